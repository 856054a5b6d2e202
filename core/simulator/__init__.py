"""A demo platform with a realistic history, made through the core services (``run.py seed``,
and the first start of the embedded default). See ``simulation.py`` and ``docs/simulator.md``."""

from core.simulator.simulation import ChatPort, Report, Simulation, simulate

__all__ = ["ChatPort", "Report", "Simulation", "simulate"]
