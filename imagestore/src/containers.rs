//! Container records: which image each container uses (a GC root) and
//! the unique container names. The engine keeps everything else about a
//! container in its own directory; these rows are what must be
//! transactional (a name is taken once, an image in use is never
//! collected).

use rusqlite::{OptionalExtension, params};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRow {
    pub id: String,
    pub name: String,
    pub image: Digest,
    pub created: String,
}

impl Store {
    /// Record a new container; fails with `NameInUse` if the name is
    /// taken (checked and inserted in one transaction).
    pub fn add_container(&mut self, row: &ContainerRow) -> Result<()> {
        let tx = self.db_mut().tx()?;
        let taken: Option<String> = tx
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                [&row.name],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Err(Error::NameInUse(row.name.clone()));
        }
        tx.execute(
            "INSERT INTO containers (id, name, image, created) VALUES (?1, ?2, ?3, ?4)",
            params![row.id, row.name, row.image.to_string(), row.created],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Give container `id` the name `name`; fails with `NameInUse` if
    /// another container has it (checked and changed in one transaction).
    pub fn rename_container(&mut self, id: &str, name: &str) -> Result<()> {
        let tx = self.db_mut().tx()?;
        let taken: Option<String> = tx
            .query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some_and(|t| t != id) {
            return Err(Error::NameInUse(name.to_string()));
        }
        tx.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, name],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<()> {
        let tx = self.db_mut().tx()?;
        tx.execute("DELETE FROM containers WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// All containers, oldest first.
    pub fn containers(&self) -> Result<Vec<ContainerRow>> {
        self.container_rows("", &[])
    }

    /// The containers `WHERE` (SQL, with `args`) picks, oldest first.
    fn container_rows(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ContainerRow>> {
        let mut stmt = self.db().conn()?.prepare_cached(&format!(
            "SELECT id, name, image, created FROM containers {filter} ORDER BY created, id"
        ))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, name, image, created)| {
                Ok(ContainerRow {
                    id,
                    name,
                    image: image.parse()?,
                    created,
                })
            })
            .collect()
    }

    /// A container by full id, unique id prefix, or name.
    pub fn find_container(&self, what: &str) -> Result<ContainerRow> {
        // Looked up by the indexes (name, id), not by reading every row:
        // `inspect` of many containers would otherwise be quadratic.
        let exact = self.container_rows("WHERE name = ?1 OR id = ?1", &[&what])?;
        if let Some(c) = exact.into_iter().next() {
            return Ok(c);
        }
        if what.is_empty() {
            return Err(Error::ContainerNotFound(what.to_string()));
        }
        let len = what.len() as i64;
        let mut by_prefix = self
            .container_rows(
                // Ids are lowercase hex: '~' sorts after all of them, so
                // the range is the prefix's, and the index serves it.
                "WHERE id >= ?1 AND id < ?1 || '~' AND substr(id, 1, ?2) = ?1",
                &[&what, &len],
            )?
            .into_iter();
        match (by_prefix.next(), by_prefix.next()) {
            (Some(c), None) => Ok(c),
            (Some(_), Some(_)) => Err(Error::ContainerNotFound(format!(
                "{what} (ambiguous id prefix)"
            ))),
            _ => Err(Error::ContainerNotFound(what.to_string())),
        }
    }

    /// Is the image used by a container?
    pub fn image_has_containers(&self, id: &Digest) -> Result<bool> {
        let n: i64 = self.db().conn()?.query_row(
            "SELECT COUNT(*) FROM containers WHERE image = ?1",
            [id.to_string()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_images_in_use_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        // A one-layer image to refer to.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
        let image = store
            .import(&tar.into_inner().unwrap()[..], Some("app"))
            .unwrap();
        let row = ContainerRow {
            id: "a".repeat(64),
            name: "web".into(),
            image: image.clone(),
            created: "2026-01-01T00:00:00Z".into(),
        };
        store.add_container(&row).unwrap();
        let dup = ContainerRow {
            id: "b".repeat(64),
            ..row.clone()
        };
        assert!(matches!(
            store.add_container(&dup),
            Err(Error::NameInUse(n)) if n == "web"
        ));
        assert_eq!(store.find_container("web").unwrap(), row);
        // A suspended store (a monitor's, while it waits) opens its
        // connection again on the next read or write.
        store.suspend();
        assert_eq!(store.find_container("aaaa").unwrap(), row);
        store.suspend();
        assert!(matches!(
            store.add_container(&dup),
            Err(Error::NameInUse(n)) if n == "web"
        ));
        assert!(store.find_container("zzz").is_err());
        assert!(store.find_container("").is_err());
        // A prefix two ids share is ambiguous; a longer one is not.
        let api = ContainerRow {
            id: format!("{}bbbb", "a".repeat(60)),
            name: "api".into(),
            ..row.clone()
        };
        store.add_container(&api).unwrap();
        assert!(matches!(
            store.find_container("aaaa"),
            Err(Error::ContainerNotFound(m)) if m.contains("ambiguous")
        ));
        assert_eq!(store.find_container(&api.id[..61]).unwrap(), api);
        assert_eq!(store.find_container(&row.id).unwrap(), row);
        assert_eq!(store.find_container("api").unwrap(), api);
        store.remove_container(&api.id).unwrap();
        // rmi refuses, prune keeps it even when unnamed.
        assert!(store.remove("app", false, &|_| false).is_err());
        store.remove_container(&row.id).unwrap();
        assert!(!store.image_has_containers(&image).unwrap());
        store.remove("app", false, &|_| false).unwrap();
    }
}
