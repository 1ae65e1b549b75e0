"""Fleet simulator: a working day for N reps (phones, tablets), their managers and the
back office against a real uvicorn server, through an injected-fault layer with a server
SIGKILL in the middle of the sync storm, then a verifier. See docs/fleet-simulator.md.

Entry point: `python -m bench.fleet_sim`, or `bench.fleet.simulator.simulate(FleetConfig(...))`.
"""
