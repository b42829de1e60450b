-- The items' version, bumped by every items upload like the catalog's: processes key the
-- cached peers of a project (its items as rivals for the same records) on it.
ALTER TABLE projects ADD COLUMN items_version bigint NOT NULL DEFAULT 0;
