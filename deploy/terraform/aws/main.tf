locals {
  p          = var.name_prefix
  az         = var.availability_zones[0]
  tags       = merge({ "managed-by" = "gitspaces-terraform" }, var.tags)
  agent_port = 8089 # providers/naming.ts AGENT_PORT: where the gitspace agent listens on a machine

  gateway_port       = 3001 # the gateway's public listener, behind the load balancer
  gateway_admin_port = 3002 # the gateway's admin listener (routes), for the runner only
  temporal_port      = tonumber(regex(":([0-9]+)$", var.temporal_address)[0])

  # Subnets: two public ones (the load balancer's nodes and the NAT gateway; no instances), a private one for the
  # gitspace machines, a private one for the gateway and the runner.
  public_cidrs  = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, i)]
  machines_cidr = cidrsubnet(var.vpc_cidr, 4, 1)
  services_cidr = cidrsubnet(var.vpc_cidr, 8, 32)

  permissions = jsondecode(file("${path.module}/runner-permissions.json"))
}

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = "${local.p}-vpc" }
}

# The VPC's default security group is left with no rules, so nothing that falls back to it is reachable.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.p}-default-closed" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.p}-igw" }
}

resource "aws_subnet" "public" {
  count                   = length(var.availability_zones)
  vpc_id                  = aws_vpc.this.id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = local.public_cidrs[count.index]
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.p}-public-${var.availability_zones[count.index]}" }
}

resource "aws_subnet" "machines" {
  vpc_id                  = aws_vpc.this.id
  availability_zone       = local.az
  cidr_block              = local.machines_cidr
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.p}-machines" }
}

resource "aws_subnet" "services" {
  vpc_id                  = aws_vpc.this.id
  availability_zone       = local.az
  cidr_block              = local.services_cidr
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.p}-services" }
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = { Name = "${local.p}-nat" }
}

# Outbound only: machines clone repositories and install packages, the runner reaches Temporal and the AWS APIs.
resource "aws_nat_gateway" "this" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = { Name = "${local.p}-nat" }
  depends_on    = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.p}-public" }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.p}-private" }
}

resource "aws_route" "private_nat" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this.id
}

resource "aws_route_table_association" "private" {
  for_each       = { machines = aws_subnet.machines.id, services = aws_subnet.services.id }
  subnet_id      = each.value
  route_table_id = aws_route_table.private.id
}

# --- VPC flow logs ------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  count = var.flow_logs_retention_days > 0 ? 1 : 0
  # checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with its own key; a customer key is the customer's choice.
  name              = "/gitspaces/${local.p}/vpc-flow-logs"
  retention_in_days = var.flow_logs_retention_days
}

resource "aws_iam_role" "flow_logs" {
  count = var.flow_logs_retention_days > 0 ? 1 : 0
  name  = "${local.p}-flow-logs"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "vpc-flow-logs.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.flow_logs_retention_days > 0 ? 1 : 0
  name  = "write-flow-logs"
  role  = aws_iam_role.flow_logs[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow_logs[0].arn}:*"
    }]
  })
}

resource "aws_flow_log" "this" {
  count           = var.flow_logs_retention_days > 0 ? 1 : 0
  vpc_id          = aws_vpc.this.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn    = aws_iam_role.flow_logs[0].arn
}
