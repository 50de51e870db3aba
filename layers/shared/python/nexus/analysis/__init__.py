"""AI analysis of conversations: the pure core shared by the Step Functions handlers
(``functions/analysis``) and the local runner of ``nexus dev``.

``schema`` (what an analysis is), ``condense`` (a conversation cut to a token budget, deterministically,
and split into chunks), ``prompt`` (the versioned instructions), ``validate`` (the model's answer
checked against the schema and the transcript), ``model`` (the call through the Nexus proxy),
``settings`` (the analysis document in the secret store), ``pipeline`` (the retry policy and limits
both the state machine and the local runner use).
"""
