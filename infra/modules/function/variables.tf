variable "project_id" {
  description = "Project the function, its service account and its grants live in."
  type        = string
}

variable "region" {
  description = "Region of the function (and of the Cloud Run service behind it)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the function's and its service account's names, so several deployments can share a project."
  type        = string
}

variable "name" {
  description = "The function's folder under functions/ (its zip is build/<name>.zip)."
  type        = string
}

variable "entry_point" {
  description = "The decorated function in functions/<name>/main.py that serves requests."
  type        = string
}

variable "runtime" {
  description = "Cloud Functions runtime; matches the project's requires-python."
  type        = string
}

variable "source_bucket" {
  description = "Bucket the source zip is uploaded to."
  type        = string
}

variable "source_archive" {
  description = "Path of the zip built by `make package` (build/<name>.zip)."
  type        = string
}

variable "build_service_account" {
  description = "Service account (full id) Cloud Build uses to build the function's image."
  type        = string
}

variable "sql_instance" {
  description = "Name of the Cloud SQL instance the function's IAM database user is created on."
  type        = string
}

variable "environment" {
  description = "Plain environment variables (settings); DB_IAM_USER and DB_POOL_MAX_SIZE are added here."
  type        = map(string)
}

variable "secret_env" {
  description = "Environment variable name => Secret Manager secret id. Each secret is mounted (latest version) and readable by this function's service account only."
  type        = map(string)
  default     = {}
}

variable "project_roles" {
  description = "Project roles beyond the ones every function needs (Cloud SQL client and instance user, log and trace writer)."
  type        = list(string)
  default     = []
}

variable "invokers" {
  description = "Who may call the function: a static key => IAM member (`allUsers`, `serviceAccount:...`). Keys are static so the plan knows them before the accounts exist."
  type        = map(string)
}

variable "ingress" {
  description = "ALLOW_ALL for a public endpoint; ALLOW_INTERNAL_ONLY for functions only Pub/Sub or Cloud Scheduler call."
  type        = string

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress)
    error_message = "ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "scaling" {
  description = "Instances, concurrency, pool size and resources; max_instances × db_pool_max_size is this function's share of Cloud SQL connections."
  type = object({
    min_instances    = number
    max_instances    = number
    concurrency      = number
    db_pool_max_size = number
    cpu              = string
    memory           = string
    timeout_seconds  = number
  })
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector for a private-IP Cloud SQL instance; null for public IP."
  type        = string
  default     = null
}
