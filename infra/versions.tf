terraform {
  # 1.11: write-only arguments (password_wo, secret_data_wo) and ephemeral resources keep
  # secrets out of the state; 1.9: a variable's validation may read another variable.
  required_version = ">= 1.11"

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
