//! `berth image …`: the local image store (import from OCI archives/layouts, list, remove).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use berth::image::{ImageRecord, Store, DEFAULT_ROOT};
use clap::{Args, Subcommand};

use super::args::Format;

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Directory of the image store (blobs, unpacked layers, names).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub image_root: PathBuf,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import an image: an OCI archive FILE, a layout DIR, oci:DIR[:TAG] or oci-archive:FILE[:TAG].
    Import {
        file: String,
        /// Name to store it under (default: the full name annotated in the archive's index).
        #[arg(long)]
        name: Option<String>,
    },
    /// List stored images.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Print names only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove stored images, then unpacked layers and blobs nothing uses any more.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print a resolved image (name, oci:…, oci-archive:…) as JSON: digest, layers, config.
    Inspect { reference: String },
    /// Remove blobs and layers no stored image or mounted rootfs uses.
    Prune,
}

pub fn run(args: ImageArgs) -> Result<i32> {
    let store = Store::open(&args.image_root)?;
    match args.command {
        ImageCommand::Import { file, name } => {
            let started = Instant::now();
            let imported = store.import(&file, name.as_deref())?;
            let r = &imported.record;
            emit(&format!(
                "imported {} {} ({} layers, {} unpacked, {} ms)\n",
                r.name,
                r.digest,
                r.layers,
                imported.unpacked_layers,
                started.elapsed().as_millis()
            ))?;
        }
        ImageCommand::Ls { format, quiet } => {
            let records = store.list()?;
            if quiet {
                emit(
                    &records
                        .iter()
                        .map(|r| format!("{}\n", r.name))
                        .collect::<String>(),
                )?;
            } else if format == Format::Json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&records)?))?;
            } else {
                emit(&table(&records))?;
            }
        }
        ImageCommand::Rm { names } => {
            for name in &names {
                let gc = store.remove(name)?;
                emit(&format!(
                    "removed {name} ({} blobs, {} layers freed)\n",
                    gc.blobs_removed, gc.layers_removed
                ))?;
            }
        }
        ImageCommand::Inspect { reference } => {
            let image = store.resolve(&reference)?;
            let layers: Vec<_> = image
                .layers
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "digest": l.blob.digest, "size": l.blob.size,
                        "mediaType": l.blob.media_type, "diffID": l.diff_id,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "reference": image.reference,
                "digest": image.digest(),
                "config": image.config,
                "layers": layers,
            });
            emit(&format!("{}\n", serde_json::to_string_pretty(&out)?))?;
        }
        ImageCommand::Prune => {
            let gc = store.gc()?;
            emit(&format!(
                "removed {} blobs, {} layers, {} stale leases\n",
                gc.blobs_removed, gc.layers_removed, gc.stale_leases_removed
            ))?;
        }
    }
    Ok(0)
}

/// Writes to stdout; a closed pipe (`berth image ls | head -1`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn table(records: &[ImageRecord]) -> String {
    let width = records
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!(
        "{:width$}  {:12}  {:>6}  {:>9}  CREATED\n",
        "NAME", "DIGEST", "LAYERS", "SIZE"
    );
    for r in records {
        out.push_str(&format!(
            "{:width$}  {:12}  {:>6}  {:>9}  {}\n",
            r.name,
            r.digest.short(),
            r.layers,
            human_size(r.size),
            r.created.as_deref().unwrap_or("-")
        ));
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
