"""The VPC for the database, the functions that talk to it, and the gateway's workers.

The functions' subnets (``app``) and the database's (``db``) have no route out: the functions reach
Secrets Manager and SNS (alerts) through interface endpoints and S3 (large records) through a free
gateway endpoint;
SQS delivers to the ingest function without the function calling SQS. The proxy is not in the VPC.

The gateway's worker tasks are the one thing that needs the internet (the proxy's public URL, ECR,
CloudWatch Logs). Their subnet group is appended after the others, so the existing subnets keep their
CIDRs; how it reaches out is the stage's ``gateway_egress`` (ADR 0015): ``public-ip`` (public subnets,
a public IP per task, inbound only from the router's security group) or ``nat`` (private subnets
behind a NAT gateway per AZ).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

WORKERS = "workers"


class Network(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        max_azs: int,
        log_retention: logs.RetentionDays,
        gateway_egress: str = "public-ip",
    ):
        super().__init__(scope, construct_id)
        nat = gateway_egress == "nat"
        # Append only: CDK numbers subnets in this order, so a new group never moves an existing one.
        workers: list[ec2.SubnetConfiguration] = (
            [
                ec2.SubnetConfiguration(name="nat", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=28),
                ec2.SubnetConfiguration(
                    name=WORKERS, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24
                ),
            ]
            if nat
            else [
                # No address on launch: the service asks for one per task (assign_public_ip).
                ec2.SubnetConfiguration(
                    name=WORKERS,
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=24,
                    map_public_ip_on_launch=False,
                )
            ]
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=max_azs,
            nat_gateways=max_azs if nat else 0,
            nat_gateway_subnets=ec2.SubnetSelection(subnet_group_name="nat") if nat else None,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
                ),
                ec2.SubnetConfiguration(name="db", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
                *workers,
            ],
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name="app")
        self.db_subnets = ec2.SubnetSelection(subnet_group_name="db")
        self.workers_subnets = ec2.SubnetSelection(subnet_group_name=WORKERS)
        self.workers_public_ip = not nat

        flow_logs = logs.LogGroup(
            self, "FlowLogs", retention=log_retention, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        # Rejected traffic only: enough to see a misconfigured security group, a fraction of the cost.
        self.vpc.add_flow_log(
            "Rejected",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )

        # The workers' subnets too: ECR serves image layers from S3, so pulls skip the NAT's per-GB fee.
        self.vpc.add_gateway_endpoint(
            "S3",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[self.app_subnets, self.workers_subnets],
        )
        self.endpoint_sg = ec2.SecurityGroup(
            self, "EndpointSg", vpc=self.vpc, allow_all_outbound=False, description="Interface endpoints"
        )
        self.secrets_endpoint = self.vpc.add_interface_endpoint(
            "SecretsManager",
            service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
            subnets=self.app_subnets,
            security_groups=[self.endpoint_sg],
            open=False,
        )
        # Alerts (ADR 0018): ingest publishes new alerts to the stage's topic; the Alerts construct
        # narrows this endpoint's policy to that one topic.
        self.sns_endpoint = self.vpc.add_interface_endpoint(
            "Sns",
            service=ec2.InterfaceVpcEndpointAwsService.SNS,
            subnets=self.app_subnets,
            security_groups=[self.endpoint_sg],
            open=False,
        )

    def function_security_group(self, name: str) -> ec2.SecurityGroup:
        """A security group for a function in the VPC: HTTPS out to the endpoints (the subnets have no
        route to the internet, so "any address" reaches only the endpoints and the S3 gateway)."""
        sg = ec2.SecurityGroup(
            self, f"{name}Sg", vpc=self.vpc, allow_all_outbound=False, description=f"{name} function"
        )
        self.endpoint_sg.add_ingress_rule(sg, ec2.Port.tcp(443), f"{name} to AWS APIs")
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs via endpoints and S3 gateway")
        return sg
