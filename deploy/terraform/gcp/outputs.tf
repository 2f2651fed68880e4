locals {
  # Exactly the `config` of POST /api/v1/infrastructures for provider "gcp" (providers/gcp/config.ts).
  infrastructure_config = merge(
    {
      project        = var.project
      region         = var.region
      zones          = var.zones
      network        = google_compute_network.this.id
      subnetwork     = google_compute_subnetwork.machines.id
      serviceAccount = google_service_account.machine.email
      image          = var.machine_image
      bootDiskSizeGb = var.machine_boot_disk_size_gb
      diskType       = var.machine_disk_type
      # The firewall selects machines by their service account; they need no tags.
      networkTags = []
      agent       = local.agent_config
    },
    var.repository_networks == null ? {} : { repositoryNetworks = var.repository_networks },
  )
}

output "infrastructure_config" {
  description = "The `config` of POST /api/v1/infrastructures with provider \"gcp\": `tofu output -json infrastructure_config`."
  value       = local.infrastructure_config
}

output "infrastructure_request" {
  description = "The whole body of POST /api/v1/infrastructures: `tofu output -json infrastructure_request | curl --json @- …`."
  value = {
    name       = var.name_prefix
    provider   = "gcp"
    config     = local.infrastructure_config
    gatewayUrl = "https://${var.domain}"
  }
}

output "gateway_url" {
  description = "Public URL of the gateway (the infrastructure's gatewayUrl)."
  value       = "https://${var.domain}"
}

output "load_balancer_ip" {
  description = "Address of the gateway's load balancer: what <domain> and *.<domain> resolve to."
  value       = google_compute_global_address.gateway.address
}

output "dns_records" {
  description = "DNS records the gateway needs (created in dns_managed_zone when it is set; create them yourself otherwise)."
  value       = local.dns_records
}

output "release_bucket" {
  description = "The release bucket: upload the packages of `npm run package` (gcloud storage cp dist/packages/FILE gs://NAME/), then set agent_package, runner_package_object and gateway_package_object."
  value = {
    name     = google_storage_bucket.releases.name
    base_url = local.release_base_url
  }
}

output "service_accounts" {
  description = "Service accounts of the runner, the gateway and the gitspace machines."
  value = {
    runner  = google_service_account.runner.email
    gateway = google_service_account.gateway.email
    machine = google_service_account.machine.email
  }
}

output "secrets" {
  description = "Secret Manager secrets to give a value (gcloud secrets versions add NAME --data-file=-)."
  value       = { for key, secret in google_secret_manager_secret.this : key => secret.secret_id }
}

output "runner_instance" {
  description = "The runner VM (its startup log: /var/log/gitspaces-runner-startup.log)."
  value       = google_compute_instance.this["runner"].name
}

output "gateway_instance" {
  description = "The gateway VM."
  value       = google_compute_instance.this["gateway"].name
}
