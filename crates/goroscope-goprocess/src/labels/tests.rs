//! Label sets built in this test process's own memory, in the layouts Go uses, read back through
//! `process_vm_readv`: small and grown maps (overflow chains, a growth left half done), the 1.24+
//! sorted list, and the garbage that must be refused rather than reported.

use super::go_map::BUCKET_SIZE;
use super::*;

/// Memory blocks kept alive (and 8-byte aligned) for the duration of a test.
#[derive(Default)]
struct Fake {
    blocks: Vec<Box<[u64]>>,
}

impl Fake {
    /// Copies `bytes` into a new aligned block and returns its address.
    fn put(&mut self, bytes: &[u8]) -> u64 {
        let mut block = vec![0u64; bytes.len().div_ceil(8).max(1)].into_boxed_slice();
        for (index, byte) in bytes.iter().enumerate() {
            block[index / 8] |= u64::from(*byte) << (8 * (index % 8));
        }
        let address = block.as_ptr() as u64;
        self.blocks.push(block);
        address
    }

    /// A Go string header for `text`, its bytes in their own block.
    fn string(&mut self, text: &[u8]) -> [u64; 2] {
        [self.put(text), text.len() as u64]
    }

    /// One `map[string]string` bucket: `cells` are (index, tophash, key, value).
    fn bucket(&mut self, cells: &[(usize, u8, &[u8], &[u8])], overflow: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; BUCKET_SIZE as usize];
        for &(index, top, key, value) in cells {
            bytes[index] = top;
            let key = self.string(key);
            let value = self.string(value);
            write_words(&mut bytes, 8 + 16 * index, &key);
            write_words(&mut bytes, 136 + 16 * index, &value);
        }
        write_words(&mut bytes, 264, &[overflow]);
        bytes
    }

    /// An `hmap` and the `*labelMap` word pointing at it; returns the `g.labels` value.
    fn map(&mut self, count: u64, flags: u8, b: u8, buckets: u64, oldbuckets: u64) -> u64 {
        let mut hmap = vec![0u8; 48];
        write_words(&mut hmap, 0, &[count]);
        hmap[8] = flags;
        hmap[9] = b;
        write_words(&mut hmap, 16, &[buckets, oldbuckets]);
        let hmap = self.put(&hmap);
        self.put(&hmap.to_le_bytes())
    }

    /// A Go 1.24+ `labelMap` holding `labels` in that order, with capacity `cap`.
    fn list(&mut self, labels: &[(&[u8], &[u8])], cap: u64) -> u64 {
        let mut elements = Vec::new();
        for (key, value) in labels {
            let mut label = vec![0u8; 32];
            let (key, value) = (self.string(key), self.string(value));
            write_words(&mut label, 0, &[key[0], key[1], value[0], value[1]]);
            elements.extend(label);
        }
        let array = self.put(&elements);
        let mut header = vec![0u8; 24];
        write_words(&mut header, 0, &[array, labels.len() as u64, cap]);
        self.put(&header)
    }
}

fn write_words(bytes: &mut [u8], at: usize, words: &[u64]) {
    for (index, word) in words.iter().enumerate() {
        bytes[at + 8 * index..at + 8 * index + 8].copy_from_slice(&word.to_le_bytes());
    }
}

fn read(layout: LabelSetLayout, labels: u64) -> Result<Vec<(String, String)>, MemoryError> {
    read_label_set(&mut ProcessMemory::new(std::process::id()), layout, labels)
}

#[track_caller]
fn refused(layout: LabelSetLayout, labels: u64, says: &str) {
    match read(layout, labels) {
        Err(error @ MemoryError::Implausible { .. }) => {
            let message = error.to_string();
            assert!(message.contains(says), "{message}");
        }
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

const MAP: LabelSetLayout = LabelSetLayout::StringMap;
const LIST: LabelSetLayout = LabelSetLayout::SortedList;

#[test]
fn a_small_map_is_read_sorted_and_escaped() {
    let mut fake = Fake::default();
    let cells: &[(usize, u8, &[u8], &[u8])] = &[
        (0, 200, b"worker", b"7"),
        (1, 1, b"deleted", b"gone"), // emptyOne: not an entry
        (3, 9, b"tenant", b"alpha"),
        (5, 77, b"bad\xff", b"x\n"),
    ];
    let bucket = fake.bucket(cells, 0);
    let buckets = fake.put(&bucket);
    let labels = fake.map(3, 0, 0, buckets, 0);
    assert_eq!(
        read(MAP, labels).unwrap(),
        pairs(&[("bad\\xff", "x\\n"), ("tenant", "alpha"), ("worker", "7")])
    );
}

#[test]
fn overflow_chains_and_a_growth_left_half_done_are_followed() {
    let mut fake = Fake::default();
    let name = |prefix: &str, index: usize| format!("{prefix}{index:02}").into_bytes();
    // New table, B = 2: bucket 0 full with two more in an overflow bucket, bucket 2 one entry.
    let keys: Vec<Vec<u8>> = (0..16).map(|index| name("k", index)).collect();
    let full: Vec<(usize, u8, &[u8], &[u8])> = (0..8)
        .map(|i| (i, 10 + i as u8, keys[i].as_slice(), b"v".as_slice()))
        .collect();
    let spill = fake.bucket(&[(0, 5, &keys[8], b"v"), (1, 6, &keys[9], b"v")], 0);
    let spill = fake.put(&spill);
    let mut table = fake.bucket(&full, spill);
    table.extend(fake.bucket(&[], 0));
    table.extend(fake.bucket(&[(0, 1, b"", b""), (4, 250, &keys[10], b"w")], 0));
    table.extend(fake.bucket(&[], 0));
    let buckets = fake.put(&table);
    // Old table, B = 1: bucket 0 evacuated (its marks stay, its data was cleared), bucket 1 not
    // yet, with an overflow bucket of its own.
    let mut evacuated = fake.bucket(&[], 0);
    evacuated[..8].copy_from_slice(&[2, 3, 4, 4, 2, 4, 4, 4]);
    let old_spill = fake.bucket(&[(7, 99, &keys[14], b"old")], 0);
    let old_spill = fake.put(&old_spill);
    let waiting = [
        (0, 5, keys[11].as_slice(), b"old".as_slice()),
        (2, 6, &keys[12], b"old"),
        (3, 7, &keys[13], b""),
    ];
    let mut old = evacuated;
    old.extend(fake.bucket(&waiting, old_spill));
    let oldbuckets = fake.put(&old);
    let labels = fake.map(15, 0, 2, buckets, oldbuckets);
    let got = read(MAP, labels).unwrap();
    let keys: Vec<&str> = got.iter().map(|(key, _)| key.as_str()).collect();
    let expected: Vec<String> = (0..15).map(|index| format!("k{index:02}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(got[13], ("k13".to_string(), String::new()));
    assert_eq!(got[14], ("k14".to_string(), "old".to_string()));

    // The same growth, as a same-size one (flag 8): the old table has 2^B buckets too.
    let mut same = old.clone();
    same.extend(fake.bucket(&[], 0));
    same.extend(fake.bucket(&[], 0));
    let oldbuckets = fake.put(&same);
    let labels = fake.map(15, 8, 2, buckets, oldbuckets);
    assert_eq!(read(MAP, labels).unwrap().len(), 15);
}

#[test]
fn nil_and_empty_sets_are_no_labels() {
    let mut fake = Fake::default();
    assert_eq!(read(MAP, 0).unwrap(), Vec::new());
    assert_eq!(read(LIST, 0).unwrap(), Vec::new());
    let nil_map = fake.put(&0u64.to_le_bytes());
    assert_eq!(read(MAP, nil_map).unwrap(), Vec::new());
    let never_filled = fake.map(0, 0, 0, 0, 0);
    assert_eq!(read(MAP, never_filled).unwrap(), Vec::new());
    let empty_list = fake.list(&[], 0);
    assert_eq!(read(LIST, empty_list).unwrap(), Vec::new());
}

#[test]
fn garbage_maps_are_refused() {
    let mut fake = Fake::default();
    let one = fake.bucket(&[(0, 9, b"a", b"1")], 0);
    let one = fake.put(&one);

    let wrong_count = fake.map(2, 0, 0, one, 0);
    refused(MAP, wrong_count, "count is 2 but whose buckets hold 1");
    let too_many = fake.map(65, 0, 4, one, 0);
    refused(MAP, too_many, "65 labels");
    let too_wide = fake.map(1, 0, 6, one, 0);
    refused(MAP, too_wide, "2^6 buckets");
    let no_buckets = fake.map(1, 0, 0, 0, 0);
    refused(MAP, no_buckets, "without buckets");
    let half = fake.map(1, 0, 0, one, one);
    refused(MAP, half, "growing from half of one bucket");

    // An overflow chain that loops back on itself ends at the bound, not in a hang.
    let empty = fake.bucket(&[], 0);
    let looping = fake.put(&empty);
    if let Some(block) = fake.blocks.last_mut() {
        block[264 / 8] = looping;
    }
    let cycle = fake.map(0, 0, 0, looping, 0);
    refused(MAP, cycle, "overflow bucket 65");

    let marked = fake.bucket(&[(0, 3, b"a", b"1")], 0);
    let marked = fake.put(&marked);
    let marked = fake.map(1, 0, 0, marked, 0);
    refused(MAP, marked, "evacuation mark");

    let long = vec![b'x'; 1025];
    let oversized = fake.bucket(&[(0, 9, b"a", &long)], 0);
    let oversized = fake.put(&oversized);
    let oversized = fake.map(1, 0, 0, oversized, 0);
    refused(MAP, oversized, "1025 bytes");

    let twice = fake.bucket(&[(0, 9, b"a", b"1"), (1, 9, b"a", b"2")], 0);
    let twice = fake.put(&twice);
    let twice = fake.map(2, 0, 0, twice, 0);
    refused(MAP, twice, "\"a\" appears twice");

    refused(MAP, one + 3, "not 8-byte aligned");
}

#[test]
fn a_sorted_list_is_read_and_garbage_lists_are_refused() {
    let mut fake = Fake::default();
    let longest = vec![b'v'; 1024];
    let labels = fake.list(&[(b"worker", b"3"), (b"tenant", &longest), (b"", b"")], 4);
    let got = read(LIST, labels).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (String::new(), String::new()));
    assert_eq!(got[1].0, "tenant");
    assert_eq!(got[1].1.len(), 1024);
    assert_eq!(got[2], ("worker".to_string(), "3".to_string()));

    let over_cap = fake.list(&[(b"a", b"1"), (b"b", b"2")], 1);
    refused(LIST, over_cap, "length 2 and capacity 1");
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..65)
        .map(|index| (format!("k{index}").into_bytes(), b"v".to_vec()))
        .collect();
    let many: Vec<(&[u8], &[u8])> = many
        .iter()
        .map(|(key, value)| (key.as_slice(), value.as_slice()))
        .collect();
    let many = fake.list(&many, 65);
    refused(LIST, many, "65 labels");

    // A string that points nowhere is unmapped, not a label.
    let mut header = vec![0u8; 24];
    let mut element = vec![0u8; 32];
    write_words(&mut element, 0, &[8, 4, 0, 0]);
    let array = fake.put(&element);
    write_words(&mut header, 0, &[array, 1, 1]);
    let dangling = fake.put(&header);
    match read(LIST, dangling) {
        Err(MemoryError::Unmapped { address: 8, .. }) => {}
        other => panic!("expected an unmapped string, got {other:?}"),
    }
}
