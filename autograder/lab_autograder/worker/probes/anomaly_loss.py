"""What the worker runs for the ``anomaly_loss`` part: ``AnomalyPredictor._calculate_loss`` on the grader's
weights and batch, then the same on correct components."""

from ..stand_ins import student_and_isolated
from ._predictor_loss import predictor_loss

probe, iso = student_and_isolated(predictor_loss("AnomalyPredictor"))
