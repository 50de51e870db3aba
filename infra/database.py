"""RDS PostgreSQL in isolated subnets: encrypted, TLS only, credentials generated into Secrets Manager
and rotated there; backups and deletion protection per stage (ADR 0009). With a snapshot in the stage
config, the instance is one restored from it (``restored_name``)."""

from __future__ import annotations

import hashlib
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra import nag
from infra.config import StageConfig
from infra.network import Network

ENGINE = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_18)
DB_NAME = "nexus"
DB_PORT = 5432
LOG_EXPORTS = ("postgresql", "upgrade")


def restored_name(stage: str, snapshot: str) -> str:
    """The instance restored from ``snapshot``: a name of its own, because CloudFormation creates a
    replacement before deleting what it replaces and cannot give both one custom name."""
    return f"nexus-{stage}-r{hashlib.sha256(snapshot.encode()).hexdigest()[:8]}"


class Database(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        network: Network,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "Sg", vpc=network.vpc, allow_all_outbound=False, description="Nexus PostgreSQL"
        )
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=ENGINE,
            parameters={
                "rds.force_ssl": "1",
                # Statements that never end hold locks and connections; ingest batches take ms.
                "idle_in_transaction_session_timeout": "60000",
                "log_min_duration_statement": "1000",
            },
        )
        removal = cdk.RemovalPolicy.SNAPSHOT if stage.deletion_protection else cdk.RemovalPolicy.DESTROY
        snapshot = stage.db_snapshot_identifier
        identifier = restored_name(stage.name, snapshot) if snapshot else f"nexus-{stage.name}"
        source: dict[str, Any] = (
            # The snapshot's database, owner and engine come with it; a new password is generated
            # into a new secret (rotation below applies to it as before).
            {
                "snapshot_identifier": snapshot,
                "credentials": rds.SnapshotCredentials.from_generated_secret("nexus_admin"),
            }
            if snapshot
            else {
                "database_name": DB_NAME,
                "credentials": rds.Credentials.from_generated_secret(
                    "nexus_admin", secret_name=f"{stage.name}/nexus/database"
                ),
                "storage_encrypted": True,  # a restored instance is encrypted as its snapshot is
            }
        )
        instance_class = rds.DatabaseInstanceFromSnapshot if snapshot else rds.DatabaseInstance
        self.instance = instance_class(
            self,
            "Instance",
            **source,
            engine=ENGINE,
            instance_type=ec2.InstanceType(stage.db_instance_class),
            vpc=network.vpc,
            vpc_subnets=network.db_subnets,
            security_groups=[self.security_group],
            port=DB_PORT,
            parameter_group=parameters,
            storage_type=rds.StorageType.GP3,
            allocated_storage=stage.db_allocated_storage_gib,
            max_allocated_storage=stage.db_max_allocated_storage_gib,
            multi_az=stage.db_multi_az,
            publicly_accessible=False,
            backup_retention=cdk.Duration.days(stage.db_backup_retention_days),
            delete_automated_backups=not stage.deletion_protection,
            deletion_protection=stage.deletion_protection,
            removal_policy=removal,
            auto_minor_version_upgrade=True,
            iam_authentication=True,
            enable_performance_insights=False,
            instance_identifier=identifier,
            cloudwatch_logs_exports=list(LOG_EXPORTS),
            copy_tags_to_snapshot=True,
        )
        if snapshot:
            nag.acknowledge(
                self.instance,
                "RDS2",
                "Restored from a snapshot, the instance is encrypted exactly as the snapshot is (RDS does "
                "not allow the property to be set): Nexus's snapshots are of its encrypted instances.",
            )
        if not stage.db_multi_az:
            nag.acknowledge(
                self.instance,
                "RDS3",
                f"{stage.name} runs single-AZ to halve its database cost; prod is multi-AZ.",
            )
        if not stage.deletion_protection:
            nag.acknowledge(
                self.instance,
                "RDS10",
                f"{stage.name} is disposable (cdk destroy must work); prod has deletion protection.",
            )
        nag.acknowledge(
            self.instance,
            "RDS11",
            "The database sits in isolated subnets behind a security group that admits only Nexus functions; "
            "a non-default port would add nothing against a network nobody else can reach.",
        )
        # Created before the instance, with a retention, instead of CDK's LogRetention helper function.
        for export in LOG_EXPORTS:
            group = logs.LogGroup(
                self,
                f"{export.title()}Logs",
                log_group_name=f"/aws/rds/instance/{identifier}/{export}",
                retention=log_retention,
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            self.instance.node.add_dependency(group)
        assert self.instance.secret is not None
        self.secret = self.instance.secret
        rotation_sg = network.function_security_group("Rotation")
        self.instance.add_rotation_single_user(
            automatically_after=cdk.Duration.days(stage.db_secret_rotation_days),
            vpc_subnets=network.app_subnets,
            endpoint=network.secrets_endpoint,
            security_group=rotation_sg,
        )
        self.allow_from(rotation_sg, "rotation")

    def allow_from(self, peer: ec2.ISecurityGroup, name: str) -> None:
        """Let a function's security group open connections to the database (and only that)."""
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(DB_PORT), f"{name} to PostgreSQL")
        peer.add_egress_rule(self.security_group, ec2.Port.tcp(DB_PORT), "PostgreSQL")
