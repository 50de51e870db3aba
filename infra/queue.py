"""The record queue: SQS FIFO (message group = session) with a dead-letter queue, and an S3 bucket for
records too large for a message (``nexus.sqs_queue``). The proxy only sends; ingest only receives."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nexus.sqs_queue import RECORD_PREFIX

from infra.config import StageConfig


class RecordQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        retention = cdk.Duration.days(stage.queue_retention_days)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            fifo=True,
            retention_period=cdk.Duration.days(14),  # the maximum: time to look and redrive
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Records",
            fifo=True,
            # Deduplication by record id (set by the sender), not by body hash.
            content_based_deduplication=False,
            # High-throughput FIFO: ordering and dedup per session, not per queue.
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            retention_period=retention,
            # AWS's advice for Lambda consumers: at least six times the function timeout.
            visibility_timeout=cdk.Duration.seconds(6 * stage.ingest_timeout_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=stage.max_receive_count, queue=self.dead_letters
            ),
        )
        self.bucket = s3.Bucket(
            self,
            "LargeRecords",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                # Kept past the queue's retention so a redriven dead letter still finds its body.
                s3.LifecycleRule(expiration=cdk.Duration.days(stage.large_record_retention_days))
            ],
            # Kept on stack deletion: it may hold records not yet ingested (they expire on their own).
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def grant_records(self, grantee: iam.IGrantable, action: str) -> None:
        """One S3 action (``s3:PutObject`` for the proxy, ``s3:GetObject`` for ingest) on the large
        records' prefix only."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[action], resources=[self.bucket.arn_for_objects(f"{RECORD_PREFIX}*")]
            )
        )
