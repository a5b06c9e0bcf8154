//! RSA-2048 key generation: aws-lc-rs (what kpki uses, through rcgen's aws_lc_rs
//! backend) against RustCrypto's `rsa` crate, 0.9 (stable line) and 0.10.
//!
//! Usage: rsa-keygen-bench [KEYS_PER_GENERATOR]   (default 30)
//!
//! Every generator makes one untimed key first, so one-time setup (aws-lc's RNG seeding,
//! which includes a CPU-jitter entropy collection, and table setup) is left out of the
//! per-key numbers; that first call is printed separately. RSA key generation is a
//! search for two random primes, so its time varies a lot from key to key: look at the
//! median and the spread, not only the mean.

use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Stats {
    name: &'static str,
    first_ms: f64,
    ms: Vec<f64>,
}

impl Stats {
    fn mean(&self) -> f64 {
        self.ms.iter().sum::<f64>() / self.ms.len() as f64
    }
    fn stddev(&self) -> f64 {
        let m = self.mean();
        let n = self.ms.len() as f64;
        (self.ms.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt()
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
}

fn run(name: &'static str, n: usize, mut generate: impl FnMut() -> usize) -> Stats {
    let t = Instant::now();
    let bits = generate();
    let first_ms = ms(t.elapsed());
    assert_eq!(bits, 2048, "{name} made a {bits}-bit key");
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let bits = generate();
        v.push(ms(t.elapsed()));
        assert_eq!(bits, 2048, "{name} made a {bits}-bit key");
    }
    let s = Stats {
        name,
        first_ms,
        ms: v,
    };
    eprintln!("  {name}: done ({n} keys, {:.0} ms mean)", s.mean());
    s
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("KEYS_PER_GENERATOR must be a number"))
        .unwrap_or(30);
    assert!(n >= 2, "make at least 2 keys per generator");
    eprintln!("generating {n} RSA-2048 keys with each generator (plus one untimed warm-up key)...");

    // aws-lc seeds its RNG on first use in a process; in aws-lc-sys builds with CPU jitter
    // entropy (the default) that seeding runs a jitter collector. kpki pays it once in
    // every process that makes an RSA key. Measured alone, before anything else uses it.
    let fill_ms = || {
        use aws_lc_rs::rand::SecureRandom;
        let mut b = [0u8; 32];
        let t = Instant::now();
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut b)
            .expect("aws-lc RNG");
        ms(t.elapsed())
    };
    let seed_ms = fill_ms();
    let second_ms = fill_ms();

    let results = [
        run("aws-lc-rs 1.x  KeyPair::generate(Rsa2048)", n, || {
            use aws_lc_rs::rsa::{KeyPair, KeySize};
            let kp = KeyPair::generate(KeySize::Rsa2048).expect("aws-lc-rs keygen");
            kp.public_modulus_len() * 8
        }),
        run("rsa 0.9  RsaPrivateKey::new(thread_rng, 2048)", n, || {
            use rsa::traits::PublicKeyParts;
            let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa 0.9 keygen");
            k.size() * 8
        }),
        run("rsa 0.10  PrivateKey::new(SysRng, 2048)", n, || {
            use rsa010::traits::PublicKeyParts;
            let k = rsa010::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("rsa 0.10 keygen");
            k.size() * 8
        }),
    ];

    println!();
    println!("RSA-2048 key generation, {n} keys each (ms per key; first = untimed warm-up call)");
    println!(
        "| {:<46} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} | {:>9} |",
        "generator", "mean", "median", "stddev", "min", "max", "first", "vs aws-lc"
    );
    println!(
        "|{:-<48}|{:->10}|{:->10}|{:->10}|{:->10}|{:->10}|{:->10}|{:->11}|",
        "", "", "", "", "", "", "", ""
    );
    let base = results[0].mean();
    for s in &results {
        let v = s.sorted();
        println!(
            "| {:<46} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.2}x |",
            s.name,
            s.mean(),
            s.median(),
            s.stddev(),
            v[0],
            v[v.len() - 1],
            s.first_ms,
            s.mean() / base
        );
    }
    println!("(vs aws-lc = mean / aws-lc-rs mean: how many times slower than kpki's generator)");
    println!();
    println!(
        "aws-lc RNG, first use in this process (seeding): {seed_ms:.2} ms; second use: {second_ms:.3} ms"
    );
}
