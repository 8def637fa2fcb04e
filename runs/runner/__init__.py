"""The runner: claims runs and executes their agent loops (python manage.py runagents).

A newcomer's path through it (docs/runner.md has the whole story): `worker.Worker` is the
process — it claims runs with `leases.runs_claim` (fairly between orgs) and gives each its own
task running `loop.AgentLoop`, which rebuilds the run from its event log (`state`), loads what it
needs (`context`), checks its limits (`budget`), calls the model (`retry`, `providers/`) and the
tools (`tools.tool_call`), and writes events through `writer.EventWriter` (group commit).
"""
