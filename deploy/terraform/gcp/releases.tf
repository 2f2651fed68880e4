# --- The release bucket: the packages of `npm run package` (the runner's and the gateway's .deb, the agent package,
# optionally a copy of the Node.js tarball) for the VMs of this module and the gitspace machines. ---
#
# Gitspace machines have no cloud permissions, and GCP has no bucket policy that admits unsigned requests from one
# VPC only (that takes VPC Service Controls, an organisation-level perimeter this module cannot assume). So objects
# are readable anonymously, but only by exact name: `roles/storage.legacyObjectReader` for allUsers grants
# storage.objects.get and nothing else (no listing, no bucket metadata), writes stay with the operator, and the
# bucket holds release packages only, which carry no secrets (the same files as a public release page). What a
# machine runs is pinned by checksum in config.agent.packageSha256 and the startup scripts, not by who may read.
# With release_bucket_public_read = false nothing is granted: then serve config.agent.packageUrl another way.

locals {
  release_bucket   = coalesce(var.release_bucket_name, "${var.project}-${local.p}-releases")
  release_base_url = "https://storage.googleapis.com/${google_storage_bucket.releases.name}"
  # config.agent: the operator's settings, with the agent package of the bucket when agent_package names one.
  agent_config = merge(
    var.agent,
    var.agent_package == null ? {} : {
      packageUrl    = "${local.release_base_url}/${var.agent_package.object}"
      packageSha256 = var.agent_package.sha256
    },
  )
}

resource "google_storage_bucket" "releases" {
  # checkov:skip=CKV_GCP_62:Access logs need a log bucket of the customer's choice; Cloud Audit Logs cover writes.
  # checkov:skip=CKV_GCP_114:Objects are readable by exact name without credentials (see above), so public access prevention cannot be enforced.
  project                     = var.project
  name                        = local.release_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = var.release_bucket_public_read ? "inherited" : "enforced"
  force_destroy               = var.release_bucket_force_destroy

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "releases_read_by_name" {
  # checkov:skip=CKV_GCP_28:Deliberate: objects.get only, for machines without credentials; see the comment at the top.
  count  = var.release_bucket_public_read ? 1 : 0
  bucket = google_storage_bucket.releases.name
  role   = "roles/storage.legacyObjectReader"
  member = "allUsers"
}
