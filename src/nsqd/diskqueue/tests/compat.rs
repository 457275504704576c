//! go-diskqueue compatibility: a directory laid out by hand from the spec
//! (`nsq-reference.md` §4.3, `golden/data-dir.txt`) is read back message for message, and
//! what we write is byte for byte what the spec says Go writes.

use super::*;
use crate::env::RealFs;

/// A message as nsqd stores it: timestamp, attempts, 16-byte id, body (8 + 2 + 16 + n).
fn message(ts: u64, attempts: u16, id: &[u8; 16], body: &[u8]) -> Vec<u8> {
    let mut m = ts.to_be_bytes().to_vec();
    m.extend_from_slice(&attempts.to_be_bytes());
    m.extend_from_slice(id);
    m.extend_from_slice(body);
    m
}

/// nsqd's limits: messages of 26 bytes up to 1 MiB of body.
fn nsqd_config() -> DiskQueueConfig {
    DiskQueueConfig::default()
}

/// Scenario 1 of data-dir.txt: three PUBs with `--mem-queue-size=0`, then SIGTERM.
#[tokio::test]
async fn golden_scenario_one_files_are_byte_identical() {
    let ids = [
        *b"0000000000000001",
        *b"0000000000000002",
        *b"0000000000000003",
    ];
    let msgs: Vec<Vec<u8>> = [&b"one"[..], b"two", b"three"]
        .iter()
        .zip(&ids)
        .map(|(body, id)| message(1_700_000_000_000_000_000, 0, id, body))
        .collect();
    let fs = MemFs::new();
    let mut topic = open(&fs, "golden", nsqd_config()).await;
    let mut channel = open(&fs, "golden:ch", nsqd_config()).await;
    for m in &msgs {
        topic.put(m).await.unwrap();
    }
    // The topic's pump moves each message to the channel.
    for _ in 0..3 {
        let m = topic.read_next().await.unwrap().unwrap();
        channel.put(&m).await.unwrap();
    }
    topic.close().await.unwrap();
    channel.close().await.unwrap();

    assert_eq!(
        names(&fs),
        vec![
            "golden.diskqueue.000000.dat",
            "golden.diskqueue.meta.dat",
            "golden:ch.diskqueue.000000.dat",
            "golden:ch.diskqueue.meta.dat",
        ]
    );
    let expected = records(&[&msgs[0], &msgs[1], &msgs[2]]);
    assert_eq!(expected.len(), 101);
    assert_eq!(&expected[..4], b"\x00\x00\x00\x1d");
    assert_eq!(&expected[33..37], b"\x00\x00\x00\x1d");
    assert_eq!(&expected[66..70], b"\x00\x00\x00\x1f");
    assert_eq!(read(&fs, "golden.diskqueue.000000.dat").await, expected);
    assert_eq!(read(&fs, "golden:ch.diskqueue.000000.dat").await, expected);
    assert_eq!(
        read(&fs, "golden.diskqueue.meta.dat").await,
        b"0\n0,101\n0,101\n"
    );
    assert_eq!(
        read(&fs, "golden:ch.diskqueue.meta.dat").await,
        b"3\n0,0\n0,101\n"
    );
}

/// Scenario 2: a topic queue never written to still leaves its metadata at exit; the
/// channel's flush order is kept; scenario 2b reads it back and leaves `0,101`.
#[tokio::test]
async fn golden_scenario_two_and_restart() {
    let fs = MemFs::new();
    let mut topic = open(&fs, "golden", nsqd_config()).await;
    topic.close().await.unwrap();
    assert_eq!(names(&fs), vec!["golden.diskqueue.meta.dat"]);
    assert_eq!(
        read(&fs, "golden.diskqueue.meta.dat").await,
        b"0\n0,0\n0,0\n"
    );

    let two = message(2, 0, b"0000000000000002", b"two");
    let three = message(3, 0, b"0000000000000003", b"three");
    let one = message(1, 1, b"0000000000000001", b"one");
    let mut channel = open(&fs, "golden:ch", nsqd_config()).await;
    channel.put_many(&[&two, &three, &one]).await.unwrap();
    channel.close().await.unwrap();
    assert_eq!(
        read(&fs, "golden:ch.diskqueue.000000.dat").await,
        records(&[&two, &three, &one])
    );
    assert_eq!(
        read(&fs, "golden:ch.diskqueue.meta.dat").await,
        b"3\n0,0\n0,101\n"
    );

    let mut channel = open(&fs, "golden:ch", nsqd_config()).await;
    assert_eq!(channel.depth(), 3);
    assert_eq!(drain(&mut channel).await, vec![two, three, one]);
    channel.close().await.unwrap();
    assert_eq!(
        read(&fs, "golden:ch.diskqueue.meta.dat").await,
        b"0\n0,101\n0,101\n"
    );
    assert!(names(&fs).contains(&"golden:ch.diskqueue.000000.dat".to_string()));
}

/// A directory as Go leaves it mid-stream: the reader inside file 1 (file 0 already
/// removed), writing in file 3, with the meta file Go writes. Every message comes back,
/// in order, finished files go, and the metadata we leave is what Go would leave.
#[tokio::test]
async fn a_go_directory_is_read_back_message_for_message() {
    let msgs: Vec<Vec<u8>> = (0..9u8)
        .map(|i| {
            message(
                u64::from(i),
                1,
                &[b'a' + i; 16],
                &vec![i; usize::from(i) * 3],
            )
        })
        .collect();
    let m = |i: usize| msgs[i].as_slice();
    let file1 = records(&[m(0), m(1), m(2)]);
    let file2 = records(&[m(3), m(4), m(5)]);
    let file3 = records(&[m(6), m(7), m(8)]);
    let read_pos = 4 + m(0).len();
    let meta = format!("8\n1,{read_pos}\n3,{}\n", file3.len());
    let fs = MemFs::new();
    write(&fs, "t:c.diskqueue.000001.dat", &file1).await;
    write(&fs, "t:c.diskqueue.000002.dat", &file2).await;
    write(&fs, "t:c.diskqueue.000003.dat", &file3).await;
    write(&fs, "t:c.diskqueue.meta.dat", meta.as_bytes()).await;

    let mut q = open(&fs, "t:c", nsqd_config()).await;
    assert_eq!(q.depth(), 8);
    let mut got = Vec::new();
    while let Some(record) = q.read_next().await.unwrap() {
        got.push(record.to_vec());
        assert_eq!(q.depth(), 8 - got.len() as i64);
    }
    assert_eq!(got, msgs[1..].to_vec());
    q.close().await.unwrap();
    assert_eq!(
        names(&fs),
        vec!["t:c.diskqueue.000003.dat", "t:c.diskqueue.meta.dat"]
    );
    let end = file3.len();
    assert_eq!(
        read(&fs, "t:c.diskqueue.meta.dat").await,
        format!("0\n3,{end}\n3,{end}\n").as_bytes()
    );
}

/// data-dir.txt: 200-byte bodies make 230-byte records and, at the default 100 MiB,
/// files of exactly 104857460 bytes (the largest multiple of 230 that fits). The same
/// rule at a small size shows our rolling reproduces it: `floor(max / 230) * 230`.
#[tokio::test]
async fn files_roll_at_the_largest_whole_number_of_records() {
    let rule = |max: u64, record: u64| max / record * record;
    assert_eq!(
        rule(DiskQueueConfig::default().max_bytes_per_file, 230),
        104_857_460
    );

    let body = [b'x'; 200];
    let msg = message(7, 0, b"0123456789abcdef", &body);
    assert_eq!(msg.len() + 4, 230);
    let max = 230 * 5 + 229;
    let fs = MemFs::new();
    let mut q = open(
        &fs,
        "t",
        DiskQueueConfig {
            max_bytes_per_file: max,
            ..nsqd_config()
        },
    )
    .await;
    for _ in 0..17 {
        q.put(&msg).await.unwrap();
    }
    q.close().await.unwrap();
    for (num, expected_len) in [(0, rule(max, 230)), (1, 1150), (2, 1150), (3, 2 * 230)] {
        let len = fs
            .len(&dir().join(format!("t.diskqueue.{num:06}.dat")))
            .await
            .unwrap();
        assert_eq!(len, expected_len, "file {num}");
    }
    assert_eq!(read(&fs, "t.diskqueue.meta.dat").await, b"17\n0,0\n3,460\n");
}

/// The same files on a real disk, through `RealFs`.
#[tokio::test]
async fn real_files_match_the_golden_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let data = tmp.path().join("data");
    let msgs: Vec<Vec<u8>> = [&b"one"[..], b"two", b"three"]
        .iter()
        .map(|b| message(1, 0, b"0000000000000001", b))
        .collect();
    let mut q = DiskQueue::open(fs.clone(), data.clone(), "golden:ch", nsqd_config())
        .await
        .unwrap();
    q.put_many(&msgs).await.unwrap();
    q.close().await.unwrap();
    let listed: Vec<String> = fs
        .list(&data)
        .await
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed,
        vec![
            "golden:ch.diskqueue.000000.dat",
            "golden:ch.diskqueue.meta.dat"
        ]
    );
    let file = fs
        .read(&data.join("golden:ch.diskqueue.000000.dat"))
        .await
        .unwrap();
    assert_eq!(file, records(&[&msgs[0], &msgs[1], &msgs[2]]));
    let meta = fs
        .read(&data.join("golden:ch.diskqueue.meta.dat"))
        .await
        .unwrap();
    assert_eq!(meta, b"3\n0,0\n0,101\n");
    let mut q = DiskQueue::open(fs.clone(), data.clone(), "golden:ch", nsqd_config())
        .await
        .unwrap();
    assert_eq!(drain(&mut q).await, msgs);
    q.close().await.unwrap();
}
