# The module configures its provider so it can be applied on its own (README: `tofu init` and `tofu apply`).
# Credentials come from the environment (AWS_PROFILE, SSO, instance role, …); AWS_ENDPOINT_URL points it at an
# emulator (the moto test).
provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}
