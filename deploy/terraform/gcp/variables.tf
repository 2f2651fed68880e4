# --- Where ------------------------------------------------------------------------------------------------

variable "project" {
  description = "GCP project id everything is created in (the gitspace machines too)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project id such as 'acme-dev-123'."
  }
}

variable "region" {
  description = "Region of the network, the gateway, the runner and the gitspace machines, e.g. europe-west1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a GCP region such as 'europe-west1'."
  }
}

variable "zones" {
  description = "Zones of the region gitspace machines may be placed in; the first also holds the gateway and the runner."
  type        = list(string)
  validation {
    condition     = length(var.zones) > 0 && alltrue([for z in var.zones : startswith(z, "${var.region}-")])
    error_message = "zones must name at least one zone, each in var.region."
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

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Compute, Certificate Manager, DNS, IAM and Secret Manager APIs in the project."
  type        = bool
  default     = true
}

# --- Network -----------------------------------------------------------------------------------------------

variable "machines_cidr" {
  description = "Private subnet of the gitspace machines."
  type        = string
  default     = "10.20.0.0/20"
}

variable "services_cidr" {
  description = "Private subnet of the gateway and the runner VMs."
  type        = string
  default     = "10.20.16.0/24"
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

variable "dns_managed_zone" {
  description = "Name of an existing Cloud DNS managed zone (in var.project) that holds var.domain. When null, no DNS records are created and output dns_records lists the ones to create elsewhere."
  type        = string
  default     = null
}

variable "gateway_allowed_cidrs" {
  description = "Source ranges allowed to reach the gateway on 443 (enforced by a Cloud Armor policy on the load balancer). [\"0.0.0.0/0\"] is everyone."
  type        = list(string)
  validation {
    condition     = length(var.gateway_allowed_cidrs) > 0 && alltrue([for c in var.gateway_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "gateway_allowed_cidrs must be a non-empty list of CIDR ranges."
  }
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
  description = "GITSPACES_INSTALLATION_ID of the runner: a label on every machine it creates."
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

variable "gateway_machine_type" {
  description = "Machine type of the gateway VM."
  type        = string
  default     = "e2-small"
}

variable "runner_machine_type" {
  description = "Machine type of the runner VM."
  type        = string
  default     = "e2-small"
}

variable "service_image" {
  description = "Boot image of the gateway and runner VMs (Debian 12 or newer)."
  type        = string
  default     = "projects/debian-cloud/global/images/family/debian-12"
}

variable "repository_secret_store" {
  description = "Let the runner read repository tokens from Secret Manager secrets named gitspaces-shared-* and gitspaces-user-* in this project (GITSPACES_SECRET_STORE=gcp:<project>)."
  type        = bool
  default     = true
}

# --- The gitspace machines (what output infrastructure_config says) ---------------------------------------------

variable "machine_image" {
  description = "Default boot image of gitspace machines."
  type        = string
  default     = "projects/debian-cloud/global/images/family/debian-12"
}

variable "machine_boot_disk_size_gb" {
  description = "Boot disk size of gitspace machines."
  type        = number
  default     = 20
}

variable "machine_disk_type" {
  description = "Disk type of gitspace machines: pd-balanced, pd-ssd or pd-standard."
  type        = string
  default     = "pd-balanced"
  validation {
    condition     = contains(["pd-balanced", "pd-ssd", "pd-standard"], var.machine_disk_type)
    error_message = "machine_disk_type must be pd-balanced, pd-ssd or pd-standard."
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
  description = "Name of the Cloud Storage bucket for the release packages; null: <project>-<name_prefix>-releases."
  type        = string
  default     = null
}

variable "release_bucket_force_destroy" {
  description = "Let `tofu destroy` delete the release bucket with the packages in it."
  type        = bool
  default     = false
}

variable "release_bucket_public_read" {
  description = "Let anyone read the release bucket's objects by exact name (objects.get only, no listing), so gitspace machines, which have no credentials, can download the agent package. false: nothing is granted."
  type        = bool
  default     = true
}

variable "agent_package" {
  description = "The agent package of `npm run package` uploaded to the release bucket: { object = \"<name>\", sha256 = \"<hex>\" }. Fills config.agent.packageUrl and packageSha256 of output infrastructure_config; null leaves var.agent as it is."
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
  description = "Name of the runner's .deb in the release bucket (instead of runner_package_url); with runner_package_sha256."
  type        = string
  default     = null
}

variable "gateway_package_object" {
  description = "Name of the gateway's .deb in the release bucket (instead of gateway_package_url); with gateway_package_sha256."
  type        = string
  default     = null
}
