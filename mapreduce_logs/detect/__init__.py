"""The anomaly rules over window counts: error_spike, user_burst, their severities, the digest."""
