terraform {
  # OpenTofu 1.6+ or Terraform 1.5+ (tested with OpenTofu 1.12).
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Validated and tested against 8.0 (scripts/terraform-tools.sh); 7.x has the same resources.
      version = ">= 7.0, < 9.0"
    }
  }
}
