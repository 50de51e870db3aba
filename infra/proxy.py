"""The recording proxy: the local ASGI app behind the Lambda Web Adapter, streamed through a function URL.

Outside the VPC on purpose: function URLs cannot stream from inside a VPC, and the proxy never talks
to the database (records go to SQS), so it needs neither a NAT gateway nor an endpoint.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from nexus import env
from nexus import metrics as m
from nexus.sqs_queue import SPILLED_MESSAGE, UNSENT_MESSAGE

from infra.config import WEB_ADAPTER_ACCOUNT, StageConfig
from infra.context import StackContext
from infra.functions import python_function

ADAPTER_PORT = "8080"


def web_adapter_layer_arn(stage: StageConfig) -> str:
    """The AWS-published adapter layer for the stack's region and the stage's architecture."""
    name = "LambdaAdapterLayerArm64" if stage.architecture == "arm64" else "LambdaAdapterLayerX86"
    return (
        f"arn:{cdk.Aws.PARTITION}:lambda:{cdk.Aws.REGION}:{WEB_ADAPTER_ACCOUNT}:layer:{name}:"
        f"{stage.web_adapter_layer_version}"
    )


class Proxy(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext) -> None:
        super().__init__(scope, construct_id)
        stage, queue, secrets = ctx.stage, ctx.queue, ctx.secrets
        adapter = lambda_.LayerVersion.from_layer_version_arn(
            self, "WebAdapter", web_adapter_layer_arn(stage)
        )
        self.function = python_function(
            self,
            "Function",
            ctx,
            code="proxy",
            handler="run.sh",
            service="nexus-proxy",
            memory_mb=stage.proxy_memory_mb,
            timeout_s=stage.proxy_timeout_s,
            reserved_concurrency=stage.proxy_reserved_concurrency,
            extra_layers=(adapter,),
            description="Nexus recording proxy (Anthropic Messages API, streamed)",
            environment={
                # Lambda Web Adapter: run.sh starts uvicorn; the adapter streams its response.
                "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
                "AWS_LWA_INVOKE_MODE": "response_stream",
                "AWS_LWA_PORT": ADAPTER_PORT,
                "AWS_LWA_READINESS_CHECK_PATH": "/health",
                env.UPSTREAM_URL: stage.upstream_url,
                env.REQUIRE_KEYS: "true",
                env.ACCESS_REFRESH_S: str(stage.access_refresh_s),
                env.STRIP_PLATFORM_HEADERS: "true",
                env.DATA_DIR: "/tmp/nexus",
                env.QUEUE_URL: queue.queue.queue_url,
                env.RECORD_BUCKET: queue.bucket.bucket_name,
                env.SECRETS_PREFIX: secrets.prefix,
            },
        )
        # Records the queue refused (nexus.sqs_queue): kept in S3 for ingest's replay, or, when S3
        # refused too, only in the log line. Counted from the log lines, for the stage's alarm.
        for name, message in ((m.RECORDS_SPILLED, SPILLED_MESSAGE), (m.RECORDS_UNSENT, UNSENT_MESSAGE)):
            self.function.log_group.add_metric_filter(
                name,
                filter_pattern=logs.FilterPattern.literal(f'"{message}"'),
                metric_namespace=m.NAMESPACE,
                metric_name=name,
                metric_value="1",
            )
        queue.queue.grant_send_messages(self.function)
        queue.grant_records(self.function, "s3:PutObject")
        secrets.grant_read_access(self.function)
        secrets.grant_refresh_requests(self.function)
        # Claude Code cannot sign SigV4, so the URL is open and the app authenticates (Nexus keys).
        self.url = self.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
        )
