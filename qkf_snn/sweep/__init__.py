"""Sweeps over training settings, above training and hardware (they never import this package).

energy.run_sweep(SweepSpec(...)) -> report document   train, measure and report every point
report.write_report(DIR) -> report document            the table and pareto.png of what has finished
pareto.pareto_front([(energy, accuracy), ...]) -> [i]  the non-dominated points, by energy
"""
