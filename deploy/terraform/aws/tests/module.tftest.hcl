# `tofu test` with a mock aws provider: the plan is checked against the real provider schema, then applied to
# mocks, and the security groups, IAM policies and outputs are asserted. No cloud is contacted (the moto test in
# scripts/terraform-test.sh applies the module for real, on loopback).

mock_provider "aws" {
  # The provider checks that what it is given as an ARN looks like one: mocks get ARN-shaped values.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/mock/0123456789abcdef", dns_name = "mock-123.eu-west-1.elb.amazonaws.com", zone_id = "Z32O12XQLNTSW2" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/mock/0123456789abcdef" }
  }
  mock_resource "aws_acm_certificate" {
    defaults = { arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mock" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/mock" }
  }
}

variables {
  region                = "eu-west-1"
  availability_zones    = ["eu-west-1a", "eu-west-1b"]
  domain                = "gitspaces.example.com"
  route53_zone_id       = "Z0123456789ABCDEFGHIJ"
  gateway_allowed_cidrs = ["203.0.113.0/24", "198.51.100.7/32"]
  control_plane_url     = "https://gitspaces-api.example.com"
  temporal_address      = "temporal.example.com:7233"
  installation_id       = "acme"
  service_ami           = "ami-0123456789abcdef0"
  agent                 = { nodeDistUrl = "https://nodejs-mirror.example.com/dist" }
  agent_package         = { object = "gitspaces-agent-0.1.0-linux-x64.tar.gz", sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  runner_package_object = "gitspaces-runner_0.1.0_amd64.deb"
  runner_package_sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012" }
}
override_data {
  target = data.aws_partition.current
  values = { partition = "aws" }
}
override_resource {
  target = aws_subnet.machines
  values = { id = "subnet-0aaaaaaaaaaaaaaa1", arn = "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0aaaaaaaaaaaaaaa1" }
}
override_resource {
  target = aws_security_group.machines
  values = { id = "sg-0aaaaaaaaaaaaaaa1", arn = "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0aaaaaaaaaaaaaaa1" }
}
override_resource {
  target = aws_security_group.gateway
  values = { id = "sg-0bbbbbbbbbbbbbbb2" }
}
override_resource {
  target = aws_security_group.runner
  values = { id = "sg-0ccccccccccccccc3" }
}
override_resource {
  target = aws_security_group.load_balancer
  values = { id = "sg-0ddddddddddddddd4" }
}
override_resource {
  target = aws_instance.gateway
  values = { private_ip = "10.30.32.10" }
}

run "security_groups" {
  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.agent_from_gateway.security_group_id == aws_security_group.machines.id &&
      aws_vpc_security_group_ingress_rule.agent_from_gateway.referenced_security_group_id == aws_security_group.gateway.id &&
      aws_vpc_security_group_ingress_rule.agent_from_runner.referenced_security_group_id == aws_security_group.runner.id &&
      aws_vpc_security_group_ingress_rule.agent_from_gateway.from_port == 8089 && aws_vpc_security_group_ingress_rule.agent_from_gateway.to_port == 8089 &&
      aws_vpc_security_group_ingress_rule.agent_from_runner.from_port == 8089 && aws_vpc_security_group_ingress_rule.agent_from_runner.to_port == 8089 &&
      aws_vpc_security_group_ingress_rule.agent_from_gateway.cidr_ipv4 == null && aws_vpc_security_group_ingress_rule.agent_from_runner.cidr_ipv4 == null
    )
    error_message = "the machines' agent port must be reachable from the gateway and the runner security groups only"
  }
  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.gateway_from_load_balancer.referenced_security_group_id == aws_security_group.load_balancer.id &&
      aws_vpc_security_group_ingress_rule.gateway_from_load_balancer.from_port == 3001 &&
      aws_vpc_security_group_ingress_rule.gateway_admin_from_runner.referenced_security_group_id == aws_security_group.runner.id &&
      aws_vpc_security_group_ingress_rule.gateway_admin_from_runner.from_port == 3002
    )
    error_message = "the gateway takes its listener from the load balancer and its admin port from the runner only"
  }
  assert {
    condition = (
      toset([for rule in aws_vpc_security_group_ingress_rule.load_balancer_https : rule.cidr_ipv4]) == toset(["203.0.113.0/24", "198.51.100.7/32"]) &&
      alltrue([for rule in aws_vpc_security_group_ingress_rule.load_balancer_https : rule.from_port == 443 && rule.to_port == 443 && rule.security_group_id == aws_security_group.load_balancer.id])
    )
    error_message = "the load balancer takes 443 from the allowed ranges only"
  }
  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "the default security group must stay closed"
  }
  assert {
    condition = alltrue([
      for key, rule in aws_vpc_security_group_egress_rule.this :
      rule.ip_protocol == "tcp" && rule.from_port == rule.to_port && (rule.cidr_ipv4 == null) != (rule.referenced_security_group_id == null)
    ])
    error_message = "egress is opened port by port"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.this["runner-temporal"].from_port == 7233 && aws_vpc_security_group_egress_rule.this["gateway-agent"].referenced_security_group_id == aws_security_group.machines.id
    error_message = "the runner reaches Temporal; the gateway reaches the agents"
  }
  assert {
    condition = (
      !aws_subnet.machines.map_public_ip_on_launch && !aws_subnet.services.map_public_ip_on_launch &&
      alltrue([for subnet in aws_subnet.public : !subnet.map_public_ip_on_launch]) &&
      aws_instance.gateway.subnet_id == aws_subnet.services.id && aws_instance.runner.subnet_id == aws_subnet.services.id &&
      aws_route.private_nat.nat_gateway_id == aws_nat_gateway.this.id && aws_route.private_nat.gateway_id == null &&
      toset(values(aws_route_table_association.private)[*].route_table_id) == toset([aws_route_table.private.id])
    )
    error_message = "nothing gets a public address; private subnets go out through NAT"
  }
}

run "iam" {
  assert {
    condition = toset(flatten([
      for statement in jsondecode(aws_iam_role_policy.runner.policy).Statement : statement.Action if statement.Sid != "OwnSecrets"
    ])) == toset(flatten([for grant in jsondecode(file("${path.module}/runner-permissions.json")).grants : grant.actions]))
    error_message = "the runner's policy grants exactly runner-permissions.json (plus reading its own secrets)"
  }
  assert {
    condition = one([
      for statement in jsondecode(aws_iam_role_policy.runner.policy).Statement : statement.Condition.StringEquals["aws:RequestTag/gitspaces-installation"] if statement.Sid == "LaunchTagged"
    ]) == "acme"
    error_message = "new instances and volumes must carry this installation's tag"
  }
  assert {
    condition = toset(one([
      for statement in jsondecode(aws_iam_role_policy.runner.policy).Statement : statement.Resource if statement.Sid == "LaunchUsing"
    ])) == toset([aws_subnet.machines.arn, aws_security_group.machines.arn, "arn:aws:ec2:eu-west-1::image/*"])
    error_message = "RunInstances only into the machines subnet with the machines security group"
  }
  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.runner.policy).Statement :
      statement.Condition.StringEquals["aws:ResourceTag/gitspaces-installation"] == "acme" if contains(["OwnedInstances", "OwnedVolumes"], statement.Sid)
    ])
    error_message = "start, stop, terminate, modify and delete only what this installation tagged"
  }
  assert {
    condition = one([
      for statement in jsondecode(aws_iam_role_policy.runner.policy).Statement : statement.Condition.StringEquals["ec2:CreateAction"] if statement.Sid == "TagOnLaunch"
    ]) == "RunInstances"
    error_message = "tags only as part of RunInstances"
  }
  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.gateway.policy).Statement : statement.Action == ["secretsmanager:GetSecretValue"]
    ])
    error_message = "the gateway may read its secret and nothing else"
  }
  assert {
    condition     = aws_instance.runner.iam_instance_profile == aws_iam_instance_profile.runner.name && aws_instance.gateway.iam_instance_profile == aws_iam_instance_profile.gateway.name
    error_message = "the VMs run with their own instance profiles"
  }
  assert {
    condition     = !contains(keys(output.infrastructure_config), "instanceProfile")
    error_message = "gitspace machines get no instance profile: no AWS credentials at all"
  }
  assert {
    condition     = aws_instance.runner.metadata_options[0].http_tokens == "required" && aws_instance.gateway.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 only"
  }
}

run "load_balancer" {
  assert {
    condition     = aws_lb_listener.https.port == 443 && aws_lb_listener.https.protocol == "HTTPS" && aws_lb.gateway.drop_invalid_header_fields
    error_message = "the load balancer listens on 443 with TLS only"
  }
  assert {
    condition     = aws_acm_certificate.gateway.domain_name == "gitspaces.example.com" && toset(aws_acm_certificate.gateway.subject_alternative_names) == toset(["*.gitspaces.example.com"])
    error_message = "the certificate covers the domain and its wildcard"
  }
  assert {
    condition     = aws_route53_record.gateway["wildcard"].name == "*.gitspaces.example.com" && one(aws_route53_record.gateway["wildcard"].alias).name == aws_lb.gateway.dns_name
    error_message = "*.<domain> aliases the load balancer"
  }
  assert {
    condition     = aws_lb_target_group.gateway.port == 3001 && aws_lb_target_group.gateway.health_check[0].path == "/healthz"
    error_message = "the load balancer forwards to the gateway's listener"
  }
  assert {
    condition     = local.gateway_env.GITSPACES_GATEWAY_TRUSTED_PROXIES == "10.30.0.0/24,10.30.1.0/24" && strcontains(aws_instance.gateway.user_data, base64encode(jsonencode(local.gateway_env)))
    error_message = "the gateway trusts forwarded headers from the load balancer's subnets only"
  }
}

run "outputs" {
  assert {
    condition = jsonencode(output.infrastructure_config) == jsonencode({
      region           = "eu-west-1"
      subnetId         = "subnet-0aaaaaaaaaaaaaaa1"
      securityGroupIds = ["sg-0aaaaaaaaaaaaaaa1"]
      volumeType       = "gp3"
      agent = {
        nodeDistUrl   = "https://nodejs-mirror.example.com/dist"
        packageSha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        packageUrl    = "https://gitspaces-releases-123456789012.s3.eu-west-1.amazonaws.com/gitspaces-agent-0.1.0-linux-x64.tar.gz"
      }
      amiLookup = { architecture = "x86_64", namePattern = "debian-12-amd64-*", owners = ["136693071363"] }
    })
    error_message = "infrastructure_config must be exactly the aws config body"
  }
  assert {
    condition     = output.infrastructure_request.provider == "aws" && jsonencode(output.infrastructure_request.config) == jsonencode(output.infrastructure_config)
    error_message = "infrastructure_request must wrap the config"
  }
}

run "release_bucket" {
  assert {
    condition = (
      aws_s3_bucket_public_access_block.releases.block_public_acls && aws_s3_bucket_public_access_block.releases.block_public_policy &&
      aws_s3_bucket_public_access_block.releases.ignore_public_acls && aws_s3_bucket_public_access_block.releases.restrict_public_buckets &&
      one(aws_s3_bucket_ownership_controls.releases.rule).object_ownership == "BucketOwnerEnforced"
    )
    error_message = "the release bucket must be private: every public access block on, no ACLs"
  }
  assert {
    condition = (
      aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3.service_name == "com.amazonaws.eu-west-1.s3" &&
      toset(aws_vpc_endpoint.s3.route_table_ids) == toset([aws_route_table.private.id])
    )
    error_message = "the private subnets (machines, gateway, runner) must reach S3 through the gateway endpoint"
  }
  assert {
    condition = (
      [for s in jsondecode(aws_s3_bucket_policy.releases.policy).Statement : [s.Action, s.Resource, s.Condition] if s.Effect == "Allow"] ==
      [["s3:GetObject", "${aws_s3_bucket.releases.arn}/*", { StringEquals = { "aws:SourceVpce" = aws_vpc_endpoint.s3.id } }]]
    )
    error_message = "unsigned reads must be allowed for objects only, and only through the VPC endpoint"
  }
  assert {
    condition     = strcontains(aws_instance.runner.user_data, base64encode("https://gitspaces-releases-123456789012.s3.eu-west-1.amazonaws.com/gitspaces-runner_0.1.0_amd64.deb"))
    error_message = "the runner installs its package from the release bucket when runner_package_object is set"
  }
}

run "fixed_machine_ami" {
  variables {
    machine_ami       = "ami-0fedcba9876543210"
    infrastructure_id = "inf-0123456789ab"
  }
  assert {
    condition     = output.infrastructure_config.ami == "ami-0fedcba9876543210" && !contains(keys(output.infrastructure_config), "amiLookup")
    error_message = "a fixed AMI replaces the lookup"
  }
  assert {
    condition     = strcontains(aws_instance.runner.user_data, "systemctl enable") && local.runner_env.GITSPACES_INFRASTRUCTURE_ID == "inf-0123456789ab"
    error_message = "with infrastructure_id the runner is started for that infrastructure"
  }
}

run "runner_waits_for_its_infrastructure_id" {
  assert {
    condition     = strcontains(aws_instance.runner.user_data, "installed but not started")
    error_message = "without infrastructure_id the runner is installed, not started"
  }
}

run "temporal_on_443_needs_no_extra_rule" {
  variables {
    temporal_address = "acme.tmprl.cloud:443"
  }
  assert {
    condition     = !contains(keys(aws_vpc_security_group_egress_rule.this), "runner-temporal")
    error_message = "no duplicate egress rule when Temporal is on 443"
  }
}

run "one_zone_is_refused" {
  command = plan
  variables {
    availability_zones = ["eu-west-1a"]
  }
  expect_failures = [var.availability_zones]
}
