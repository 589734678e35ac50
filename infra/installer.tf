# Message DB's installer as a one-off Cloud Run job, run after each apply (cloudbuild.yaml)
# or by hand: `gcloud run jobs execute <name> --region <region> --wait`. It runs the project's
# own `messagedb-agent db install` (idempotent: a second run changes nothing), then grants the
# functions' IAM database users Message DB's `message_store` role, and ingest the right to
# create its rate-limit schema.
#
# It connects as the built-in `postgres` user over Cloud Run's built-in Cloud SQL connection
# (a Unix socket under /cloudsql, served by the Cloud SQL connector): creating a role, a
# schema and an extension takes more than an IAM user is given.

locals {
  installer_database_url = "postgresql://${google_sql_user.admin.name}@/${google_sql_database.main.name}?host=/cloudsql/${google_sql_database_instance.main.connection_name}"

  installer_command = join(" ", concat(
    ["messagedb-agent db install &&", "python -m messagedb_agent.deploy.database_users"],
    [for user in [module.ingest.db_user, module.relay.db_user, module.step.db_user] : "--member '${user}'"],
    ["--schema-creator '${module.ingest.db_user}'"],
  ))
}

resource "google_service_account" "installer" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-messagedb-install"
  display_name = "Message DB installer job (${var.name_prefix})"
}

resource "google_project_iam_member" "installer" {
  for_each = toset(["roles/cloudsql.client", "roles/logging.logWriter"])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.installer.email}"
}

resource "google_secret_manager_secret_iam_member" "installer_reads_admin_password" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.db_admin_password.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.installer.email}"
}

resource "google_cloud_run_v2_job" "messagedb_install" {
  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-messagedb-install"
  deletion_protection = false

  template {
    task_count = 1

    template {
      service_account = google_service_account.installer.email
      max_retries     = 1
      timeout         = "600s"

      volumes {
        name = "cloudsql"
        cloud_sql_instance {
          instances = [google_sql_database_instance.main.connection_name]
        }
      }

      containers {
        image   = var.image
        command = ["/bin/sh", "-c"]
        args    = [local.installer_command]

        env {
          name  = "DATABASE_URL"
          value = local.installer_database_url
        }

        # libpq reads the password from PGPASSWORD, so it never appears in the URL.
        env {
          name = "PGPASSWORD"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.db_admin_password.secret_id
              version = "latest"
            }
          }
        }

        volume_mounts {
          name       = "cloudsql"
          mount_path = "/cloudsql"
        }
      }
    }
  }

  depends_on = [
    google_project_iam_member.installer,
    google_secret_manager_secret_iam_member.installer_reads_admin_password,
    google_secret_manager_secret_version.db_admin_password,
  ]
}
