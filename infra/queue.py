"""The record queue: SQS FIFO (message group = session) with a dead-letter queue, and an S3 bucket for
records too large for a message (``nexus.sqs_queue``). The proxy only sends; ingest only receives."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nexus import env
from nexus.sqs_queue import RECORD_PREFIX, UNSENT_PREFIX

from infra import nag
from infra.config import StageConfig

# The actions a function may have on the large records, as the acknowledgment of the grant words them.
RECORD_ACTIONS = {"s3:PutObject": "writes", "s3:GetObject": "reads"}


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
        nag.acknowledge(
            self.bucket,
            "S1",
            "Holds only transient copies of oversized records, written by the proxy role and read by ingest; "
            "an access-log bucket would cost more than the data. CloudTrail data events can audit it.",
        )

    def grant_records(self, fn: lambda_.Function, action: str) -> None:
        """One S3 action (``s3:PutObject`` for the proxy, ``s3:GetObject`` for ingest) on the large
        records' prefix only."""
        verb = RECORD_ACTIONS[action]
        objects = self.bucket.arn_for_objects(f"{RECORD_PREFIX}*")
        fn.grant_principal.add_to_principal_policy(iam.PolicyStatement(actions=[action], resources=[objects]))
        assert fn.role is not None
        nag.acknowledge(
            fn.role,
            f"IAM5[Resource::{nag.flatten(self, objects)}]",
            f"Objects are named by record id at run time; the function only {verb} under records/.",
        )

    def grant_unsent_replay(self, fn: lambda_.Function) -> None:
        """Ingest's replay of records the proxy could not queue: list, read and delete them under
        ``records/unsent/`` only."""
        fn.add_environment(env.RECORD_BUCKET, self.bucket.bucket_name)
        objects = self.bucket.arn_for_objects(f"{UNSENT_PREFIX}*")
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{UNSENT_PREFIX}*"]}},
            )
        )
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[objects]))
        assert fn.role is not None
        nag.acknowledge(
            fn.role,
            f"IAM5[Resource::{nag.flatten(self, objects)}]",
            "Unsent records are named by record id at run time; ingest deletes them under records/unsent/ "
            "once stored.",
        )
