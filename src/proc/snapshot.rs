//! One pass over `/proc`: every process and its parent, and the walk from a
//! set of roots down to all their descendants.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;

use super::{Stat, children_of, read_stat};
use crate::sys::Pid;

/// Processes as one pass over `/proc` (or over a few trees) found them.
#[derive(Default)]
pub struct Snapshot {
    pub procs: HashMap<Pid, Stat>,
}

impl Snapshot {
    /// Every process on the machine (that this `/proc` shows).
    pub fn scan() -> Snapshot {
        let mut procs = HashMap::new();
        if !super::available() {
            return Snapshot { procs };
        }
        if let Ok(dir) = fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<Pid>().ok()) else {
                    continue;
                };
                if let Some(stat) = read_stat(pid) {
                    procs.insert(pid, stat);
                }
            }
        }
        Snapshot { procs }
    }

    /// A partial snapshot: `pids` and everything below them, read through
    /// the children files instead of a scan of every process.
    pub fn of_trees(pids: &[Pid]) -> Snapshot {
        let mut snap = Snapshot::default();
        snap.add_trees(pids);
        snap
    }

    pub fn add_pids(&mut self, pids: &[Pid]) {
        for &p in pids {
            if let Some(st) = read_stat(p) {
                self.procs.insert(p, st);
            }
        }
    }

    /// Adds `pids` and their descendants (children files) to the snapshot.
    pub fn add_trees(&mut self, pids: &[Pid]) {
        let mut queue: VecDeque<Pid> = pids.iter().copied().collect();
        while let Some(p) = queue.pop_front() {
            if self.procs.contains_key(&p) {
                continue;
            }
            if let Some(st) = read_stat(p) {
                self.procs.insert(p, st);
                queue.extend(children_of(p));
            }
        }
    }

    /// parent -> children, built once per walk.
    fn children_map(&self) -> HashMap<Pid, Vec<Pid>> {
        let mut map: HashMap<Pid, Vec<Pid>> = HashMap::with_capacity(self.procs.len());
        for s in self.procs.values() {
            map.entry(s.ppid).or_default().push(s.pid);
        }
        map
    }

    /// Every process below `roots` (not the roots themselves), zombies
    /// included, in breadth-first order (parents before their children).
    pub fn descendants(&self, roots: &[Pid]) -> Vec<Pid> {
        let children = self.children_map();
        let mut out = Vec::new();
        let mut queue: VecDeque<Pid> = roots.iter().copied().collect();
        let mut seen: HashSet<Pid> = roots.iter().copied().collect();
        while let Some(p) = queue.pop_front() {
            if let Some(kids) = children.get(&p) {
                for &k in kids {
                    // pid 0's "children" (init, kthreadd) are not a tree to walk.
                    if k != p && seen.insert(k) {
                        out.push(k);
                        queue.push_back(k);
                    }
                }
            }
        }
        out
    }

    /// The live (not zombie) processes below `roots`, parents first.
    pub fn live_descendants(&self, roots: &[Pid]) -> Vec<&Stat> {
        self.descendants(roots)
            .into_iter()
            .filter_map(|p| self.get(p))
            .filter(|s| !s.is_zombie())
            .collect()
    }

    pub fn get(&self, pid: Pid) -> Option<&Stat> {
        self.procs.get(&pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pid: Pid, ppid: Pid, state: char) -> Stat {
        Stat {
            pid,
            comm: format!("p{pid}"),
            state,
            ppid,
            pgrp: pid,
            session: pid,
            flags: 0,
            start_time: pid as u64,
            rss_pages: 0,
        }
    }

    #[test]
    fn walks_every_level_parents_first_and_skips_zombies_when_asked() {
        let mut snap = Snapshot::default();
        for s in [
            stat(10, 1, 'S'),
            stat(11, 10, 'S'),
            stat(12, 11, 'Z'),
            stat(13, 12, 'S'),
            stat(20, 1, 'S'),
        ] {
            snap.procs.insert(s.pid, s);
        }
        assert_eq!(snap.descendants(&[10]), vec![11, 12, 13]);
        let live: Vec<Pid> = snap.live_descendants(&[10]).iter().map(|s| s.pid).collect();
        assert_eq!(live, vec![11, 13]);
        assert!(snap.descendants(&[20]).is_empty());
    }
}
