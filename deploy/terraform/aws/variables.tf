# --- Where ------------------------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of everything, e.g. eu-west-1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as 'eu-west-1'."
  }
}

variable "availability_zones" {
  description = "Two availability zones of the region (the load balancer needs two); the first holds the machines, the gateway and the runner."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "availability_zones must name at least two zones."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (lowercase letters, digits, dashes; at most 20 characters)."
  type        = string
  default     = "gitspaces"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and use at most 20 lowercase letters, digits and dashes."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# --- Network -----------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC; the subnets are carved out of it."
  type        = string
  default     = "10.30.0.0/16"
}

variable "machine_egress_ports" {
  description = "TCP ports gitspace machines may open outbound (through NAT): git over ssh, http(s) and git."
  type        = list(number)
  default     = [22, 80, 443, 9418]
}

variable "flow_logs_retention_days" {
  description = "Days VPC flow logs are kept in CloudWatch Logs; 0 turns flow logs off."
  type        = number
  default     = 365
}

# --- The gateway's public side -----------------------------------------------------------------------------

variable "domain" {
  description = "Domain of the gateway, e.g. gitspaces.example.com: gitspaces are served at https://<id>.<domain> and https://<domain>/gitspaces/<id>."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lowercase DNS name such as gitspaces.example.com."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone holding var.domain. When null, no DNS records are created (output dns_records lists them) and the certificate waits for its validation record to be created elsewhere."
  type        = string
  default     = null
}

variable "wait_for_certificate" {
  description = "Wait until ACM has issued the certificate before creating the HTTPS listener (needs the validation record)."
  type        = bool
  default     = true
}

variable "gateway_allowed_cidrs" {
  description = "Source ranges allowed to reach the gateway on 443. [\"0.0.0.0/0\"] is everyone."
  type        = list(string)
  validation {
    condition     = length(var.gateway_allowed_cidrs) > 0 && alltrue([for c in var.gateway_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "gateway_allowed_cidrs must be a non-empty list of CIDR ranges."
  }
}

variable "load_balancer_deletion_protection" {
  description = "Protect the load balancer from deletion (turn off before destroying)."
  type        = bool
  default     = true
}

variable "load_balancer_access_logs_bucket" {
  description = "S3 bucket for the load balancer's access logs (with the ELB log-delivery policy); null: none."
  type        = string
  default     = null
}

# --- What the gateway and the runner run --------------------------------------------------------------------

variable "control_plane_url" {
  description = "Base URL of the Gitspaces control plane (the gateway fetches <url>/api/v1/.well-known/jwks.json)."
  type        = string
  validation {
    condition     = can(regex("^https?://[^/]+", var.control_plane_url))
    error_message = "control_plane_url must be an http(s) URL."
  }
}

variable "temporal_address" {
  description = "host:port of the Temporal frontend the runner polls (outbound only)."
  type        = string
  validation {
    condition     = can(regex("^[^:]+:[0-9]+$", var.temporal_address))
    error_message = "temporal_address must be host:port."
  }
}

variable "temporal_namespace" {
  description = "Temporal namespace."
  type        = string
  default     = "default"
}

variable "temporal_tls" {
  description = "Connect to Temporal over TLS."
  type        = bool
  default     = true
}

variable "work_order_public_key" {
  description = "PEM public key of the control plane's work-order signing key (not secret)."
  type        = string
  default     = null
}

variable "infrastructure_id" {
  description = "Id the control plane gave this infrastructure (POST /api/v1/infrastructures with output infrastructure_config). Null on the first apply: the runner is installed but not started until it is set."
  type        = string
  default     = null
}

variable "installation_id" {
  description = "GITSPACES_INSTALLATION_ID of the runner: a tag on every machine it creates, and what its IAM policy is scoped to."
  type        = string
  default     = "default"
}

variable "runner_package_url" {
  description = "URL of the released runner package (.deb with the gitspaces-runner systemd unit). Null: the image already has it."
  type        = string
  default     = null
}

variable "runner_package_sha256" {
  description = "SHA-256 of the runner package; required with runner_package_url."
  type        = string
  default     = null
  validation {
    condition     = var.runner_package_sha256 == null || can(regex("^[0-9a-f]{64}$", var.runner_package_sha256))
    error_message = "runner_package_sha256 must be 64 lowercase hex digits."
  }
}

variable "gateway_package_url" {
  description = "URL of the released gateway package (.deb with the gitspaces-gateway systemd unit). Null: the image already has it."
  type        = string
  default     = null
}

variable "gateway_package_sha256" {
  description = "SHA-256 of the gateway package; required with gateway_package_url."
  type        = string
  default     = null
  validation {
    condition     = var.gateway_package_sha256 == null || can(regex("^[0-9a-f]{64}$", var.gateway_package_sha256))
    error_message = "gateway_package_sha256 must be 64 lowercase hex digits."
  }
}

variable "runner_service" {
  description = "systemd unit the runner package installs."
  type        = string
  default     = "gitspaces-runner.service"
}

variable "gateway_service" {
  description = "systemd unit the gateway package installs."
  type        = string
  default     = "gitspaces-gateway.service"
}

variable "gateway_instance_type" {
  description = "Instance type of the gateway VM."
  type        = string
  default     = "t3.small"
}

variable "runner_instance_type" {
  description = "Instance type of the runner VM."
  type        = string
  default     = "t3.small"
}

variable "detailed_monitoring" {
  description = "CloudWatch detailed (1-minute) monitoring of the gateway and runner VMs."
  type        = bool
  default     = true
}

variable "service_ami" {
  description = "AMI of the gateway and runner VMs (Debian 12 or newer); null: the newest official Debian 12 amd64 AMI."
  type        = string
  default     = null
}

variable "repository_secret_store" {
  description = "Let the runner read repository tokens from Secrets Manager secrets named gitspaces/shared/* and gitspaces/users/* (GITSPACES_SECRET_STORE=aws:<region>)."
  type        = bool
  default     = true
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the module's secrets when they are deleted (0: at once)."
  type        = number
  default     = 7
}

# --- The gitspace machines (what output infrastructure_config says) ---------------------------------------------

variable "machine_ami" {
  description = "A fixed AMI for gitspace machines (config.ami); null uses machine_ami_lookup."
  type        = string
  default     = null
}

variable "machine_ami_lookup" {
  description = "config.amiLookup: the newest AMI matching this, when machine_ami is null. Default: official Debian 12 amd64."
  type = object({
    owners       = list(string)
    namePattern  = string
    architecture = optional(string)
  })
  default = {
    owners       = ["136693071363"]
    namePattern  = "debian-12-amd64-*"
    architecture = "x86_64"
  }
}

variable "machine_volume_type" {
  description = "EBS volume type of the machines' data volume: gp3, gp2, io1 or io2."
  type        = string
  default     = "gp3"
  validation {
    condition     = contains(["gp3", "gp2", "io1", "io2"], var.machine_volume_type)
    error_message = "machine_volume_type must be gp3, gp2, io1 or io2."
  }
}

variable "agent" {
  description = "config.agent of the infrastructure: how machines install the gitspace agent (e.g. { packageUrl = \"https://…/gitspaces-agent.tgz\" })."
  type        = any
  default     = {}
}

variable "repository_networks" {
  description = "config.repositoryNetworks of the infrastructure (e.g. { allowPrivate = true } for an on-premises git server); null leaves it out."
  type        = any
  default     = null
}

# --- The release bucket (releases.tf) ------------------------------------------------------------------------

variable "release_bucket_name" {
  description = "Name of the S3 bucket for the release packages; null: <name_prefix>-releases-<account id>."
  type        = string
  default     = null
}

variable "release_bucket_force_destroy" {
  description = "Let `tofu destroy` delete the release bucket with the packages in it."
  type        = bool
  default     = false
}

variable "agent_package" {
  description = "The agent package of `npm run package` uploaded to the release bucket: { object = \"<key>\", sha256 = \"<hex>\" }. Fills config.agent.packageUrl and packageSha256 of output infrastructure_config; null leaves var.agent as it is."
  type = object({
    object = string
    sha256 = string
  })
  default = null
  validation {
    condition     = var.agent_package == null || can(regex("^[0-9a-f]{64}$", var.agent_package.sha256))
    error_message = "agent_package.sha256 must be 64 lowercase hex digits."
  }
}

variable "runner_package_object" {
  description = "Key of the runner's .deb in the release bucket (instead of runner_package_url); with runner_package_sha256."
  type        = string
  default     = null
}

variable "gateway_package_object" {
  description = "Key of the gateway's .deb in the release bucket (instead of gateway_package_url); with gateway_package_sha256."
  type        = string
  default     = null
}
