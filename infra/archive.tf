# Idle threads archived by `messagedb-agent archive` (threads/archive.py): one JSON lines object
# per thread and archive run, created with ifGenerationMatch=0 and never overwritten. The
# operator who runs the command sets ARCHIVE_URL to the `archive_url` output.
resource "google_storage_bucket" "archive" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-thread-archive"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false # it holds the only copy of every archived thread

  # A deleted or replaced object stays restorable as a noncurrent version.
  versioning {
    enabled = true
  }

  depends_on = [google_project_service.apis]
}

# ingest restores an archived thread when its owner reads it or writes to it: read only.
resource "google_storage_bucket_iam_member" "ingest_reads_archive" {
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${module.ingest.service_account_email}"
}

# Whoever runs `messagedb-agent archive` writes new objects and reads them back to verify them;
# neither role may delete or replace an object.
resource "google_storage_bucket_iam_member" "archive_operators" {
  for_each = {
    for pair in setproduct(var.archive_operators, ["roles/storage.objectCreator", "roles/storage.objectViewer"]) :
    "${pair[0]} ${pair[1]}" => { member = pair[0], role = pair[1] }
  }

  bucket = google_storage_bucket.archive.name
  role   = each.value.role
  member = each.value.member
}
