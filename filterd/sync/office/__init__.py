"""The education office's receiver: enrolment, verified uploads, dashboard, yearly report."""
