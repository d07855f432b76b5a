-- An operator may set a stuck or failed saga aside for manual review (`POST
-- /admin/sagas/{id}/review`): the recovery loop then leaves it alone until an operator retries or
-- compensates it, which clears these columns. Who did what is in the platform's `admin_audit`
-- table; these columns only say whether the saga is held, by whom and why, for the saga views.
ALTER TABLE sagas ADD COLUMN review_note TEXT NULL;
ALTER TABLE sagas ADD COLUMN review_by TEXT NULL;
ALTER TABLE sagas ADD COLUMN review_at BIGINT NULL;
