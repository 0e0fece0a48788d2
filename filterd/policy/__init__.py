"""The policy engine: groups, client identification, rules, schedules, decide().

Pure: nothing here does network, web or database I/O after load.
"""
