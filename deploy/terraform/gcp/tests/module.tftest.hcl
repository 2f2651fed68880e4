# `tofu test` with a mock google provider: the plan is checked against the real provider schema, then applied to
# mocks, and the firewall rules, IAM bindings and outputs are asserted. No cloud is contacted.

mock_provider "google" {}

variables {
  project               = "acme-dev-123"
  region                = "europe-west1"
  zones                 = ["europe-west1-b", "europe-west1-c"]
  domain                = "gitspaces.example.com"
  dns_managed_zone      = "example-com"
  gateway_allowed_cidrs = ["203.0.113.0/24", "198.51.100.7/32"]
  control_plane_url     = "https://gitspaces-api.example.com"
  temporal_address      = "temporal.example.com:7233"
  agent                 = {}
  agent_package         = { object = "gitspaces-agent-0.1.0-linux-x64.tar.gz", sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  runner_package_object = "gitspaces-runner_0.1.0_amd64.deb"
  runner_package_sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
}

# Realistic identifiers where outputs and rules depend on them (the mocks would otherwise make random strings).
override_resource {
  target = google_service_account.runner
  values = { email = "gitspaces-runner@acme-dev-123.iam.gserviceaccount.com", member = "serviceAccount:gitspaces-runner@acme-dev-123.iam.gserviceaccount.com", name = "projects/acme-dev-123/serviceAccounts/gitspaces-runner@acme-dev-123.iam.gserviceaccount.com" }
}
override_resource {
  target = google_service_account.gateway
  values = { email = "gitspaces-gateway@acme-dev-123.iam.gserviceaccount.com", member = "serviceAccount:gitspaces-gateway@acme-dev-123.iam.gserviceaccount.com", name = "projects/acme-dev-123/serviceAccounts/gitspaces-gateway@acme-dev-123.iam.gserviceaccount.com" }
}
override_resource {
  target = google_service_account.machine
  values = { email = "gitspaces-machine@acme-dev-123.iam.gserviceaccount.com", member = "serviceAccount:gitspaces-machine@acme-dev-123.iam.gserviceaccount.com", name = "projects/acme-dev-123/serviceAccounts/gitspaces-machine@acme-dev-123.iam.gserviceaccount.com" }
}
override_resource {
  target = google_compute_network.this
  values = { id = "projects/acme-dev-123/global/networks/gitspaces-vpc" }
}
override_resource {
  target = google_compute_subnetwork.machines
  values = { id = "projects/acme-dev-123/regions/europe-west1/subnetworks/gitspaces-machines" }
}
override_resource {
  target = google_compute_address.gateway
  values = { address = "10.20.16.2" }
}
override_resource {
  target = google_certificate_manager_dns_authorization.gateway
  values = { dns_resource_record = [{ name = "_acme-challenge.gitspaces.example.com.", type = "CNAME", data = "abc.authorize.certificatemanager.goog." }] }
}
override_data {
  target = data.google_project.this
  values = { number = "123456789012" }
}

run "firewall" {
  assert {
    condition = (
      one(google_compute_firewall.agent_from_gateway_and_runner.allow).protocol == "tcp" &&
      toset(one(google_compute_firewall.agent_from_gateway_and_runner.allow).ports) == toset(["8089"])
    )
    error_message = "the agent rule must open tcp 8089 and nothing else"
  }
  assert {
    condition = (
      toset(google_compute_firewall.agent_from_gateway_and_runner.source_service_accounts) == toset([google_service_account.gateway.email, google_service_account.runner.email]) &&
      try(length(google_compute_firewall.agent_from_gateway_and_runner.source_ranges), 0) == 0 &&
      toset(google_compute_firewall.agent_from_gateway_and_runner.target_service_accounts) == toset([google_service_account.machine.email])
    )
    error_message = "the agent port must be reachable from the gateway and the runner only, on the machines only"
  }
  assert {
    condition = (
      toset(google_compute_firewall.gateway_from_load_balancer.source_ranges) == toset(["35.191.0.0/16", "130.211.0.0/22"]) &&
      toset(one(google_compute_firewall.gateway_from_load_balancer.allow).ports) == toset(["3001"]) &&
      toset(google_compute_firewall.gateway_from_load_balancer.target_service_accounts) == toset([google_service_account.gateway.email])
    )
    error_message = "the gateway listener must be reachable from Google's load balancer front ends only"
  }
  assert {
    condition = (
      toset(google_compute_firewall.gateway_admin_from_runner.source_service_accounts) == toset([google_service_account.runner.email]) &&
      toset(one(google_compute_firewall.gateway_admin_from_runner.allow).ports) == toset(["3002"])
    )
    error_message = "the gateway admin port must be reachable from the runner only"
  }
  assert {
    condition = alltrue([
      for key, rule in google_compute_firewall.deny_other_ingress :
      rule.priority > google_compute_firewall.agent_from_gateway_and_runner.priority &&
      one(rule.deny).protocol == "all" && try(length(rule.allow), 0) == 0 && rule.source_ranges == toset(["0.0.0.0/0"])
    ]) && toset(keys(google_compute_firewall.deny_other_ingress)) == toset(["machines", "gateway", "runner"])
    error_message = "everything else must be denied to the machines, the gateway and the runner, right after the allows"
  }
  assert {
    condition     = try(length(google_compute_instance.this["gateway"].network_interface[0].access_config), 0) == 0 && try(length(google_compute_instance.this["runner"].network_interface[0].access_config), 0) == 0
    error_message = "the gateway and the runner VMs must have no public address"
  }
  assert {
    condition = (
      google_compute_router_nat.this.source_subnetwork_ip_ranges_to_nat == "LIST_OF_SUBNETWORKS" &&
      toset([for s in google_compute_router_nat.this.subnetwork : s.name]) == toset([google_compute_subnetwork.machines.id, google_compute_subnetwork.services.id])
    )
    error_message = "NAT must serve the machines and the services subnets"
  }
}

run "iam" {
  assert {
    condition     = toset(google_project_iam_custom_role.runner.permissions) == toset(jsondecode(file("${path.module}/runner-permissions.json")).grants.project.permissions)
    error_message = "the runner's project role must be exactly the project grant of runner-permissions.json"
  }
  assert {
    condition     = google_project_iam_member.runner.member == google_service_account.runner.member && google_project_iam_member.runner.role == google_project_iam_custom_role.runner.id
    error_message = "the runner's project role must be bound to the runner's service account"
  }
  assert {
    condition = (
      google_project_iam_custom_role.runner_act_as_machine.permissions == toset(["iam.serviceAccounts.actAs"]) &&
      google_service_account_iam_member.runner_act_as_machine.service_account_id == google_service_account.machine.name &&
      google_service_account_iam_member.runner_act_as_machine.member == google_service_account.runner.member
    )
    error_message = "the runner may act as the machines' service account, on that account only"
  }
  assert {
    condition = (
      google_project_iam_custom_role.runner_repository_secrets[0].permissions == toset(["secretmanager.versions.access"]) &&
      strcontains(google_project_iam_member.runner_repository_secrets[0].condition[0].expression, "projects/123456789012/secrets/gitspaces-shared-") &&
      strcontains(google_project_iam_member.runner_repository_secrets[0].condition[0].expression, "projects/123456789012/secrets/gitspaces-user-")
    )
    error_message = "the runner may read repository token secrets only"
  }
  assert {
    condition = alltrue([
      for grant in google_secret_manager_secret_iam_member.readers :
      grant.member != google_service_account.machine.member && grant.role == "roles/secretmanager.secretAccessor"
    ]) && length(google_secret_manager_secret_iam_member.readers) == 5
    error_message = "secrets are read by the gateway and the runner only, never the machines"
  }
  assert {
    condition     = google_compute_instance.this["gateway"].service_account[0].email == google_service_account.gateway.email && google_compute_instance.this["runner"].service_account[0].email == google_service_account.runner.email
    error_message = "the VMs run as their own service accounts"
  }
}

run "load_balancer" {
  assert {
    condition     = google_compute_global_forwarding_rule.gateway.port_range == "443" && google_compute_global_forwarding_rule.gateway.load_balancing_scheme == "EXTERNAL_MANAGED"
    error_message = "the load balancer listens on 443 only"
  }
  assert {
    condition     = toset(google_certificate_manager_certificate.gateway.managed[0].domains) == toset(["gitspaces.example.com", "*.gitspaces.example.com"])
    error_message = "the certificate covers the domain and its wildcard"
  }
  assert {
    condition = (
      jsonencode([for rule in google_compute_security_policy.gateway.rule : rule.match[0].config[0].src_ip_ranges if rule.action == "allow"]) == jsonencode([toset(["203.0.113.0/24", "198.51.100.7/32"])]) &&
      [for rule in google_compute_security_policy.gateway.rule : rule.action if rule.priority == 2147483647] == ["deny(403)"]
    )
    error_message = "Cloud Armor admits the allowed ranges and denies everyone else"
  }
  assert {
    condition     = google_compute_backend_service.gateway.security_policy == google_compute_security_policy.gateway.id
    error_message = "the security policy is attached to the gateway's backend"
  }
  assert {
    condition     = google_dns_record_set.gateway["wildcard"].name == "*.gitspaces.example.com." && tolist(google_dns_record_set.gateway["wildcard"].rrdatas) == tolist([google_compute_global_address.gateway.address])
    error_message = "*.<domain> points at the load balancer"
  }
  assert {
    condition     = google_dns_record_set.gateway["certificate"].type == "CNAME"
    error_message = "the certificate's DNS authorization record is created"
  }
  assert {
    condition     = strcontains(google_compute_instance.this["gateway"].metadata_startup_script, base64encode(jsonencode(local.gateway_env))) && local.gateway_env.GITSPACES_GATEWAY_TRUSTED_PROXIES == "35.191.0.0/16,130.211.0.0/22,${google_compute_global_address.gateway.address}"
    error_message = "the gateway trusts forwarded headers from the load balancer's front ends only"
  }
}

run "outputs" {
  assert {
    condition = jsonencode(output.infrastructure_config) == jsonencode({
      project        = "acme-dev-123"
      region         = "europe-west1"
      zones          = ["europe-west1-b", "europe-west1-c"]
      network        = "projects/acme-dev-123/global/networks/gitspaces-vpc"
      subnetwork     = "projects/acme-dev-123/regions/europe-west1/subnetworks/gitspaces-machines"
      serviceAccount = "gitspaces-machine@acme-dev-123.iam.gserviceaccount.com"
      image          = "projects/debian-cloud/global/images/family/debian-12"
      bootDiskSizeGb = 20
      diskType       = "pd-balanced"
      networkTags    = []
      agent = {
        packageSha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        packageUrl    = "https://storage.googleapis.com/acme-dev-123-gitspaces-releases/gitspaces-agent-0.1.0-linux-x64.tar.gz"
      }
    })
    error_message = "infrastructure_config must be exactly the gcp config body"
  }
  assert {
    condition     = output.infrastructure_request.provider == "gcp" && jsonencode(output.infrastructure_request.config) == jsonencode(output.infrastructure_config) && output.infrastructure_request.gatewayUrl == "https://gitspaces.example.com"
    error_message = "infrastructure_request must wrap the config"
  }
}

run "release_bucket" {
  assert {
    condition = (
      google_storage_bucket.releases.uniform_bucket_level_access &&
      [for m in google_storage_bucket_iam_member.releases_read_by_name : [m.role, m.member]] == [["roles/storage.legacyObjectReader", "allUsers"]]
    )
    error_message = "anyone may get the release objects by name (no listing, no writes), nothing else"
  }
  assert {
    condition     = strcontains(google_compute_instance.this["runner"].metadata_startup_script, base64encode("https://storage.googleapis.com/acme-dev-123-gitspaces-releases/gitspaces-runner_0.1.0_amd64.deb"))
    error_message = "the runner installs its package from the release bucket when runner_package_object is set"
  }
}

run "release_bucket_private" {
  variables {
    release_bucket_public_read = false
  }
  assert {
    condition     = length(google_storage_bucket_iam_member.releases_read_by_name) == 0 && google_storage_bucket.releases.public_access_prevention == "enforced"
    error_message = "without release_bucket_public_read nothing may read the bucket anonymously"
  }
}

run "runner_waits_for_its_infrastructure_id" {
  assert {
    condition     = strcontains(google_compute_instance.this["runner"].metadata_startup_script, "installed but not started") && !strcontains(google_compute_instance.this["runner"].metadata_startup_script, "systemctl enable")
    error_message = "without infrastructure_id the runner is installed, not started"
  }
}

run "runner_starts_with_its_infrastructure_id" {
  variables {
    infrastructure_id   = "inf-0123456789ab"
    repository_networks = { allowPrivate = true }
  }
  assert {
    condition     = strcontains(google_compute_instance.this["runner"].metadata_startup_script, "systemctl enable") && local.runner_env.GITSPACES_INFRASTRUCTURE_ID == "inf-0123456789ab"
    error_message = "with infrastructure_id the runner is started for that infrastructure"
  }
  assert {
    condition     = jsonencode(output.infrastructure_config.repositoryNetworks) == jsonencode({ allowPrivate = true })
    error_message = "repository_networks reaches the config"
  }
}

run "no_dns_zone_no_records" {
  variables {
    dns_managed_zone = null
  }
  assert {
    condition     = length(google_dns_record_set.gateway) == 0 && output.dns_records.wildcard.name == "*.gitspaces.example.com."
    error_message = "without a managed zone no record is created and dns_records says what to create"
  }
}

run "zones_outside_the_region_are_refused" {
  command = plan
  variables {
    zones = ["us-central1-a"]
  }
  expect_failures = [var.zones]
}
