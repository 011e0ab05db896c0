//! A Rust program under the agent: Vec, String, HashMap, Box and threads,
//! all through Rust's default global allocator (the system malloc). Prints
//! a checksum that does not depend on scheduling.
use std::collections::HashMap;
use std::thread;

fn work(seed: u64, n: u64) -> u64 {
    let mut map: HashMap<u64, String> = HashMap::new();
    let mut boxes: Vec<Box<[u8]>> = Vec::new();
    for i in 0..n {
        map.insert(i, format!("value-{}-{}", seed, i));
        boxes.push(vec![(i % 251) as u8; (i % 500 + 1) as usize].into_boxed_slice());
        if boxes.len() > 64 {
            boxes.remove(0);
        }
    }
    let text: u64 = map.values().map(|s| s.len() as u64).sum();
    let bytes: u64 = boxes.iter().map(|b| b.iter().map(|&x| x as u64).sum::<u64>()).sum();
    text + bytes
}

fn main() {
    let handles: Vec<_> = (0..4).map(|t| thread::spawn(move || work(t, 20_000))).collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("rust total={}", total);
}
