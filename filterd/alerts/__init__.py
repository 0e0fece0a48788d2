"""Real-time alerts to the school's own staff: safeguarding (a child meeting high-risk
content, repeated bypass) and appliance health. Never sent to the office.

rules.py      which events match which policy rule (alert_rules.py parses them)
aggregate.py  the event writer's hook: events -> hits counted into throttled alerts
recipients.py who receives what (validated values, quiet hours)
render.py     the words of an alert: subject, text, the webhook JSON
email.py      the SMTP channel (STARTTLS / TLS, password from a file)
webhook.py    the webhook channel (documented JSON body)
queue.py      the deliverer: fan-out, digest, retries with backoff from the durable queue
health.py     appliance health checks raising alerts for IT staff
service.py    wires them into the daemon
"""
