# One Cloud Function (gen2) with its own service account, IAM database user, secrets and
# invokers. Every grant derives from the same inputs as the function itself, so a secret the
# function reads is always one its account may access, and nothing else is.

locals {
  # What every function needs: connect through the Cloud SQL connector as its IAM user,
  # and write logs and traces.
  base_roles = [
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/logging.logWriter",
    "roles/cloudtrace.agent",
  ]

  # Cloud SQL names a service account's IAM user after its email without this suffix.
  db_user = trimsuffix(google_service_account.this.email, ".gserviceaccount.com")

  # Settings tied to this function's identity and to its share of the connection budget.
  # THREADS and WORKERS are functions-framework's own (its gunicorn reads them; unset, it runs
  # 4 threads per CPU it sees): one process serving exactly max_instance_request_concurrency
  # requests at once, so the concurrency Cloud Run sends is the concurrency the code runs.
  instance_env = {
    DB_IAM_USER      = local.db_user
    DB_POOL_MAX_SIZE = tostring(var.scaling.db_pool_max_size)
    THREADS          = tostring(var.scaling.concurrency)
    WORKERS          = "1"
  }
}

resource "google_service_account" "this" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-${var.name}"
  display_name = "${var.name} function (${var.name_prefix})"
}

resource "google_project_iam_member" "roles" {
  for_each = toset(concat(local.base_roles, var.project_roles))

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.this.email}"
}

resource "google_sql_user" "iam" {
  project  = var.project_id
  instance = var.sql_instance
  name     = local.db_user
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"

  # The installer grants this user Message DB's `message_store` role (and ingest its schema),
  # and Cloud SQL cannot delete a PostgreSQL user that holds granted roles, so deleting it
  # would fail `terraform destroy`. On destroy it is left to the instance instead (deleted with
  # it; a removed function's user is dropped by hand after `REASSIGN OWNED` / `DROP OWNED`).
  # https://registry.terraform.io/providers/hashicorp/google/6.50.0/docs/resources/sql_user#deletion_policy
  deletion_policy = "ABANDON"
}

resource "google_secret_manager_secret_iam_member" "secret" {
  for_each = var.secret_env

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.this.email}"
}

# The object's name carries the zip's hash, so a new build deploys a new revision.
resource "google_storage_bucket_object" "source" {
  name   = "${var.name}-${filemd5(var.source_archive)}.zip"
  bucket = var.source_bucket
  source = var.source_archive
}

resource "google_cloudfunctions2_function" "this" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-${var.name}"

  build_config {
    runtime         = var.runtime
    entry_point     = var.entry_point
    service_account = var.build_service_account

    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.this.email
    min_instance_count               = var.scaling.min_instances
    max_instance_count               = var.scaling.max_instances
    max_instance_request_concurrency = var.scaling.concurrency
    available_cpu                    = var.scaling.cpu
    available_memory                 = var.scaling.memory
    timeout_seconds                  = var.scaling.timeout_seconds
    ingress_settings                 = var.ingress
    all_traffic_on_latest_revision   = true
    vpc_connector                    = var.vpc_connector
    vpc_connector_egress_settings    = var.vpc_connector == null ? null : "PRIVATE_RANGES_ONLY"

    environment_variables = merge(var.environment, local.instance_env)

    dynamic "secret_environment_variables" {
      for_each = var.secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  # The first revision starts with its secrets and roles already granted.
  depends_on = [
    google_project_iam_member.roles,
    google_secret_manager_secret_iam_member.secret,
    google_sql_user.iam,
  ]
}

# Gen2 functions are Cloud Run services: invoking one takes run.invoker on the service.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = var.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.name
  role     = "roles/run.invoker"
  member   = each.value
}
