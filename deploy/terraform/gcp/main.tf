locals {
  p          = var.name_prefix
  zone       = var.zones[0]
  labels     = merge({ "managed-by" = "gitspaces-terraform" }, var.labels)
  agent_port = 8089 # providers/naming.ts AGENT_PORT: where the gitspace agent listens on a machine

  gateway_port       = 3001 # the gateway's public listener, behind the load balancer
  gateway_admin_port = 3002 # the gateway's admin listener (routes), for the runner only

  # Google front ends: where the external load balancer's proxies and its health checks come from. The gateway
  # believes X-Forwarded-* headers only from these (GITSPACES_GATEWAY_TRUSTED_PROXIES).
  google_front_end_ranges = ["35.191.0.0/16", "130.211.0.0/22"]

  permissions = jsondecode(file("${path.module}/runner-permissions.json"))

  apis = [
    "certificatemanager.googleapis.com",
    "compute.googleapis.com",
    "dns.googleapis.com",
    "iam.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

data "google_project" "this" {
  project_id = var.project
}

resource "google_project_service" "apis" {
  for_each           = var.enable_apis ? toset(local.apis) : toset([])
  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

# --- Network: one VPC, a private subnet for the machines, one for the gateway and the runner, NAT for egress ---

resource "google_compute_network" "this" {
  project                 = var.project
  name                    = "${local.p}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "machines" {
  project                  = var.project
  name                     = "${local.p}-machines"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.machines_cidr
  private_ip_google_access = true
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_subnetwork" "services" {
  project                  = var.project
  name                     = "${local.p}-services"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.services_cidr
  private_ip_google_access = true
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  project = var.project
  name    = "${local.p}-router"
  region  = var.region
  network = google_compute_network.this.id
}

# Outbound only: machines clone repositories and install packages, the runner reaches Temporal and the control
# plane. Nothing gets a public address.
resource "google_compute_router_nat" "this" {
  project                            = var.project
  name                               = "${local.p}-nat"
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"
  subnetwork {
    name                    = google_compute_subnetwork.machines.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }
  subnetwork {
    name                    = google_compute_subnetwork.services.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
