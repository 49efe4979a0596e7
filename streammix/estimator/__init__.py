"""The estimator users touch, its fit pipeline, persistence, selection and prediction."""
