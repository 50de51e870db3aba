"""The pipeline's shape in numbers, read by both runners: the state machine (``infra/analysis.py``)
and ``nexus dev``'s in-process runner (``nexus_analysis.runner``), so a retry or a timeout behaves
the same in AWS and on a laptop.
"""

from __future__ import annotations

# Model errors worth another attempt (raised by ``nexus.analysis.model``; the Lambda error type is
# the exception's class name, which the state machine's Retry matches).
RETRYABLE = ("ModelThrottled", "ModelOverloaded", "ModelTimeout", "ModelUnavailable")
RETRY_INTERVAL_S = 3
RETRY_BACKOFF = 2.0
RETRY_MAX_ATTEMPTS = 3  # retries after the first attempt

MODEL_TIMEOUT_S = 120  # one model call (the SDK's timeout; the call step's Lambda timeout is above it)
CALL_STEP_TIMEOUT_S = 150
DATA_STEP_TIMEOUT_S = 60
EXECUTION_TIMEOUT_S = 30 * 60
MAP_CONCURRENCY = 4  # chunks analysed at once
VALIDATION_RETRIES = 1  # an invalid answer is sent back once with the error, then the run fails

MAX_OUTPUT_TOKENS = 4096

# Failure reasons the pipeline writes itself (besides the error name of a failed step).
INVALID = "InvalidAnalysis"
