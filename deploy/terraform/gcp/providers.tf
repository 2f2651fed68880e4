# The module configures its provider so it can be applied on its own (README: `tofu init` and `tofu apply`).
# Credentials come from the environment: Application Default Credentials (gcloud auth application-default login)
# or GOOGLE_APPLICATION_CREDENTIALS.
provider "google" {
  project        = var.project
  region         = var.region
  default_labels = local.labels
}
