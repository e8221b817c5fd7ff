//! TensorBoard event files: recrl's writer gives, byte for byte, the file TensorBoard's own
//! Python writer gives for the same events (`scripts/fixtures/tensorboard_reference.py`,
//! tensorboard 2.21.0, which also reads the file back with TensorBoard's loader).

use recrl_lib::tensorboard::EventWriter;

/// (wall time, step, scalars) of one call.
type Call<'a> = (f64, i64, &'a [(&'a str, f64)]);

#[test]
fn events_equal_tensorboards_own_writer_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create_at(dir.path(), 1764892800.0, "host").unwrap();
    let events: [Call; 4] = [
        (1764892800.25, 0, &[("reward", 0.5)]),
        (
            1764892801.5,
            1,
            &[("reward", 0.625), ("kl", 0.03125), ("quality/fluency", 0.9)],
        ),
        (
            1764892802.75,
            300,
            &[("drift/d_ndcg10", -0.0002), ("loss", 1e-7)],
        ),
        (
            1764892803.0,
            1 << 40,
            &[("ctr", 123456.789), ("skipped", f64::NAN)],
        ),
    ];
    for (wall, step, values) in events {
        w.scalars_at(step, wall, values).unwrap();
    }
    let path = w.path().to_path_buf();
    drop(w);
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        "events.out.tfevents.1764892800.host"
    );
    let ours = std::fs::read(&path).unwrap();
    let reference = include_bytes!("fixtures/tensorboard/reference.tfevents");
    assert_eq!(ours.len(), reference.len());
    assert!(
        ours == reference,
        "the event file differs from TensorBoard's"
    );
    // a second writer in the same folder and second gets its own file
    let again = EventWriter::create_at(dir.path(), 1764892800.0, "host").unwrap();
    assert!(again.path().to_string_lossy().ends_with(".host.1"));
}
