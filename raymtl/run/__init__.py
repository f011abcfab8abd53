"""The RUN folder's contracts, defined once: `layout` (where every file lives) and `progress`
(the live records that training writes while it goes on: a trial's epochs and heartbeat, an
ensemble member's state), which results, the dashboard and the terminal read.
"""
