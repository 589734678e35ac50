terraform {
  # `check` blocks and lifecycle preconditions; optional() object attributes.
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
  }

  # State lives in a GCS bucket: `terraform init -backend-config="bucket=<bucket>"`.
  backend "gcs" {
    prefix = "messagedb-agent"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
