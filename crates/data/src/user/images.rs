//! Image folders in the layout of torchvision's `ImageFolder` and Keras's
//! `image_dataset_from_directory`: a folder of class folders, or a root with
//! `train/` and optional `valid/` (or `val/`) and `test/`, each a folder of
//! class folders. Class names are the folder names, sorted.
//!
//! Every image is decoded once (PNG or JPEG, 8-bit gray, RGB or RGBA, any
//! size, with decoder limits so a header cannot ask for gigabytes), converted
//! to the model's channels and size, and kept as bytes: memory is about the
//! size of the decoded 8-bit images at the model's size, never f32 copies.
//! Folders are decoded in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::resize::{cover_size, crop_offset, crop_planes, resize_planes};
use crate::error::{DataError, Result};
use crate::image::{ImageDataset, ImageDims};

/// The largest width or height a decoder accepts: a header claiming more is
/// refused before any pixel memory is reserved.
pub const MAX_SIDE: u32 = 16_384;
/// The most memory one image's decoding may reserve.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;
/// The largest image file read (compressed bytes, before decoding).
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;
/// Subfolders followed below a class folder (as `ImageFolder`, which walks
/// them), so a symlink loop cannot recurse forever.
const MAX_DEPTH: usize = 8;

/// A split of an image folder: its folder and its files with their labels.
#[derive(Clone, Debug)]
pub struct FolderSplit {
    /// `train`, `valid` or `test` (`train` for a folder without splits).
    pub name: &'static str,
    pub dir: PathBuf,
    /// Each image file and its class index, sorted by class then path.
    pub files: Vec<(PathBuf, usize)>,
}

/// What an image folder holds, before decoding.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    pub root: PathBuf,
    /// The class names: the training split's folder names, sorted.
    pub classes: Vec<String>,
    pub train: FolderSplit,
    pub valid: Option<FolderSplit>,
    pub test: Option<FolderSplit>,
}

/// How an image is fitted to the model's height and width.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crop {
    /// Resized to exactly H x W (the aspect ratio may change): torchvision's
    /// `Resize((H, W))`, Keras's `image_size`.
    #[default]
    Stretch,
    /// Resized to cover H x W with the aspect ratio kept, then the center
    /// cut out: torchvision's `Resize` then `CenterCrop`.
    Center,
    /// The shorter side resized to `shorter` (aspect kept), then the center
    /// H x W cut out: torchvision's `Resize(256)` then `CenterCrop(224)`,
    /// the ImageNet evaluation transform (`shorter` below H or W counts as
    /// H or W).
    Resized { shorter: usize },
}

/// What a split is decoded into.
#[derive(Clone, Copy, Debug)]
pub struct ImageLoadOptions {
    /// Channels (1 or 3), height and width of the model's input.
    pub dims: ImageDims,
    pub crop: Crop,
    /// Skip (and count) files that do not decode instead of failing.
    pub skip_bad: bool,
}

/// A decoded split.
#[derive(Debug)]
pub struct LoadedImages {
    pub dataset: ImageDataset,
    /// Files skipped with `skip_bad`, and why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// An image as decoded, before fitting: its original mode and size.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    pub width: usize,
    pub height: usize,
    /// `gray`, `gray+alpha`, `rgb`, `rgba` (and `16-bit` variants).
    pub mode: &'static str,
    /// 1 (gray) or 3 (color) planes of `height x width` bytes, alpha dropped.
    pub channels: usize,
    pub planes: Vec<u8>,
}

impl ImageFolder {
    /// Reads the layout of `root` (no image is decoded).
    pub fn scan(root: &Path) -> Result<Self> {
        let sub = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_dir());
        let (train_dir, named) = match sub(&["train"]) {
            Some(d) => (d, true),
            None => (root.to_path_buf(), false),
        };
        let classes = class_folders(&train_dir)?;
        if classes.is_empty() {
            return Err(DataError::Empty {
                what: train_dir.display().to_string(),
                reason: "no class folders (expected one folder per class, holding its images; or train/, valid/ and test/ folders of class folders)".into(),
            });
        }
        let mut seen = Visited::default();
        if named {
            // split folders are entered below; the root only holds them
            seen.enter(root)?;
        }
        let train = split_files("train", &train_dir, &classes, true, &mut seen)?;
        let (valid, test) = if named {
            let valid = sub(&["valid", "val", "validation"])
                .map(|d| split_files("valid", &d, &classes, false, &mut seen))
                .transpose()?;
            let test = sub(&["test"])
                .map(|d| split_files("test", &d, &classes, false, &mut seen))
                .transpose()?;
            (valid, test)
        } else {
            (None, None)
        };
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            train,
            valid,
            test,
        })
    }

    /// The splits present, train first.
    pub fn splits(&self) -> Vec<&FolderSplit> {
        std::iter::once(&self.train)
            .chain(self.valid.as_ref())
            .chain(self.test.as_ref())
            .collect()
    }
}

/// Whether `root` looks like an image folder: class folders (directly or
/// under `train/`) holding files.
pub fn looks_like_image_folder(root: &Path) -> bool {
    let train = root.join("train");
    let dir = if train.is_dir() {
        train
    } else {
        root.to_path_buf()
    };
    class_folders(&dir).is_ok_and(|c| !c.is_empty())
}

fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sorted names of the (non-hidden) folders in `dir`.
fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(DataError::BadFile {
                file: path.display().to_string(),
                reason: "the folder name is not valid UTF-8, so it cannot be a class name".into(),
            });
        };
        if !hidden(&name) && path.is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every file of a split's class folders. A split other than train may lack
/// classes, but may not have classes the training split does not.
fn split_files(
    name: &'static str,
    dir: &Path,
    classes: &[String],
    is_train: bool,
    seen: &mut Visited,
) -> Result<FolderSplit> {
    seen.enter(dir)?;
    let present = class_folders(dir)?;
    let known: std::collections::HashSet<&String> = classes.iter().collect();
    if let Some(extra) = present.iter().find(|c| !known.contains(c)) {
        return Err(DataError::BadFile {
            file: dir.join(extra).display().to_string(),
            reason: format!(
                "class `{extra}` of the {name} split is not a class of the training split ({})",
                classes.join(", ")
            ),
        });
    }
    // every class folder is entered before any is walked, so a link inside
    // one class to another class is a second route, not that class's images
    let class_dirs: Vec<(usize, &String, PathBuf)> = classes
        .iter()
        .enumerate()
        .map(|(label, class)| (label, class, dir.join(class)))
        .filter(|(_, _, d)| d.is_dir())
        .collect();
    for (_, _, class_dir) in &class_dirs {
        seen.enter(class_dir)?;
    }
    let mut files = Vec::new();
    for (label, class, class_dir) in class_dirs {
        let mut found = Vec::new();
        walk(&class_dir, 0, &mut found, seen)?;
        if found.is_empty() && is_train {
            return Err(DataError::Empty {
                what: class_dir.display().to_string(),
                reason: format!("class folder `{class}` holds no files"),
            });
        }
        found.sort();
        files.extend(found.into_iter().map(|p| (p, label)));
    }
    Ok(FolderSplit {
        name,
        dir: dir.to_path_buf(),
        files,
    })
}

/// The folders entered so far in one scan, by device and inode (a canonical
/// path where there are no inodes): a folder reached a second time — a
/// symbolic link to an ancestor, or a `..` link into another class — is a
/// cycle or a second route, reported and never followed.
#[derive(Default)]
struct Visited {
    dirs: std::collections::HashMap<DirId, PathBuf>,
}

#[cfg(unix)]
type DirId = (u64, u64);
#[cfg(not(unix))]
type DirId = PathBuf;

impl Visited {
    /// Records `dir`; an error if it was entered before.
    fn enter(&mut self, dir: &Path) -> Result<()> {
        let id = dir_id(dir)?;
        match self.dirs.get(&id) {
            Some(first) => Err(DataError::Cycle {
                dir: dir.to_path_buf(),
                first: first.clone(),
            }),
            None => {
                self.dirs.insert(id, dir.to_path_buf());
                Ok(())
            }
        }
    }
}

#[cfg(unix)]
fn dir_id(dir: &Path) -> Result<DirId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    Ok((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn dir_id(dir: &Path) -> Result<DirId> {
    std::fs::canonicalize(dir).map_err(io(dir))
}

/// The non-hidden files below `dir` (anything that is not a folder: what is
/// not a regular file is refused by name when it is read).
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, seen: &mut Visited) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if entry.file_name().to_str().is_some_and(hidden) {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                seen.enter(&path)?;
                walk(&path, depth + 1, out, seen)?;
            }
        } else {
            // a FIFO or a device with an image's name is listed too, so that
            // reading it refuses it by name (or --skip-bad lists it)
            out.push(path);
        }
    }
    Ok(())
}

/// Decodes one image file as it is (any size; alpha dropped), refusing
/// headers beyond [`MAX_SIDE`] or [`MAX_DECODE_BYTES`].
pub fn decode_file(path: &Path) -> Result<DecodedImage> {
    let bytes = finetune_files::read_capped(path, MAX_IMAGE_FILE_BYTES, "an image file")?;
    decode_bytes(&bytes).map_err(|reason| DataError::BadFile {
        file: path.display().to_string(),
        reason,
    })
}

/// [`decode_file`] on bytes in memory; the error is the reason only.
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<DecodedImage, String> {
    use image::{DynamicImage, ImageFormat, ImageReader};
    let format = image::guess_format(bytes).map_err(|_| {
        "not a PNG or JPEG image (its first bytes are not an image signature)".to_string()
    })?;
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg) {
        return Err(format!(
            "a {format:?} image; only PNG and JPEG are read (convert it, or skip it with --skip-bad)"
        ));
    }
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => format!(
            "the image is larger than this reader accepts ({MAX_SIDE} x {MAX_SIDE} pixels, {} MiB decoded): {e}",
            MAX_DECODE_BYTES >> 20
        ),
        other => format!("cannot decode the {format:?} image: {other}"),
    })?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let (mode, gray) = match &img {
        DynamicImage::ImageLuma8(_) => ("gray", true),
        DynamicImage::ImageLumaA8(_) => ("gray+alpha", true),
        DynamicImage::ImageRgb8(_) => ("rgb", false),
        DynamicImage::ImageRgba8(_) => ("rgba", false),
        DynamicImage::ImageLuma16(_) => ("gray 16-bit", true),
        DynamicImage::ImageLumaA16(_) => ("gray+alpha 16-bit", true),
        DynamicImage::ImageRgb16(_) => ("rgb 16-bit", false),
        DynamicImage::ImageRgba16(_) => ("rgba 16-bit", false),
        _ => ("other", false),
    };
    let exact = (format == ImageFormat::Jpeg)
        .then(|| jpeg_as_pillow(bytes, width, height, gray))
        .flatten();
    let planes = if let Some(planes) = exact {
        planes
    } else if gray {
        img.to_luma8().into_raw()
    } else {
        let rgb = img.to_rgb8().into_raw();
        let pixels: Vec<[u8; 3]> = rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        planar(&pixels)
    };
    Ok(DecodedImage {
        width,
        height,
        mode,
        channels: if gray { 1 } else { 3 },
        planes,
    })
}

/// A JPEG's pixels as Pillow decodes them (planes, gray or RGB), by
/// libjpeg-turbo (`mozjpeg`'s decoder): its integer IDCT, "fancy" chroma
/// upsampling and colour conversion. `image`'s decoder (zune-jpeg) differs
/// from it by up to 3 levels on 7% of a photo's pixels, which moved
/// EfficientNet-Lite0's top probability on `dog.jpg` by 0.008; with these
/// the photos give PyTorch's probabilities. Called only after `image` has
/// decoded the file (so a corrupt or truncated file was already refused,
/// where libjpeg would warn and fill in gray); `None` (keep `image`'s
/// pixels) if libjpeg disagrees on the size or fails.
fn jpeg_as_pillow(bytes: &[u8], width: usize, height: usize, gray: bool) -> Option<Vec<u8>> {
    // libjpeg reports a fatal error by unwinding out of the decoder, with
    // `resume_unwind` (no panic message); it ends here as `None`
    let decode = std::panic::AssertUnwindSafe(|| -> std::io::Result<Vec<u8>> {
        let header = mozjpeg::Decompress::new_mem(bytes)?;
        if (header.width(), header.height()) != (width, height) {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let pixels = if gray {
            let mut started = header.grayscale()?;
            let rows: Vec<u8> = started.read_scanlines()?;
            started.finish()?;
            rows
        } else {
            let mut started = header.rgb()?;
            let rows: Vec<[u8; 3]> = started.read_scanlines()?;
            started.finish()?;
            planar(&rows)
        };
        Ok(pixels)
    });
    let pixels = std::panic::catch_unwind(decode).ok()?.ok()?;
    (pixels.len() == width * height * if gray { 1 } else { 3 }).then_some(pixels)
}

/// Interleaved RGB pixels as three planes.
fn planar(rgb: &[[u8; 3]]) -> Vec<u8> {
    let plane = rgb.len();
    let mut planes = vec![0u8; 3 * plane];
    for (i, px) in rgb.iter().enumerate() {
        planes[i] = px[0];
        planes[plane + i] = px[1];
        planes[2 * plane + i] = px[2];
    }
    planes
}

impl DecodedImage {
    /// The image as `channels` planes: color to gray by the ITU-R 601 luma
    /// weights (Pillow's `convert("L")`, in its fixed point), gray to color
    /// by repetition.
    pub fn to_channels(&self, channels: usize) -> Vec<u8> {
        let plane = self.width * self.height;
        match (self.channels, channels) {
            (a, b) if a == b => self.planes.clone(),
            (1, _) => self.planes.repeat(channels),
            (_, _) => {
                let (r, g, b) = (
                    &self.planes[..plane],
                    &self.planes[plane..2 * plane],
                    &self.planes[2 * plane..],
                );
                r.iter()
                    .zip(g)
                    .zip(b)
                    .map(|((&r, &g), &b)| {
                        let l = u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471;
                        ((l + 0x8000) >> 16) as u8
                    })
                    .collect()
            }
        }
    }

    /// The image fitted to `dims`: channels converted, then resized
    /// (bilinear as Pillow, hence torchvision's `Resize`) and, with
    /// [`Crop::Center`], center-cropped.
    pub fn fit(&self, dims: ImageDims, crop: Crop) -> Vec<u8> {
        let planes = self.to_channels(dims.channels);
        let from = (self.height, self.width);
        let to = (dims.height, dims.width);
        // the size resized to before the centre is cut out (none for a stretch)
        let cover = match crop {
            Crop::Stretch => return resize_planes(&planes, dims.channels, from, to),
            Crop::Center => cover_size(from, to),
            Crop::Resized { shorter } => {
                let side = shorter.max(to.0).max(to.1);
                cover_size(from, (side, side))
            }
        };
        let resized = resize_planes(&planes, dims.channels, from, cover);
        let at = (crop_offset(cover.0, to.0), crop_offset(cover.1, to.1));
        crop_planes(&resized, dims.channels, cover, at, to)
    }
}

/// Why a file was refused, without its name (the caller lists it beside).
pub fn reason_of(e: DataError) -> String {
    match e {
        DataError::BadFile { reason, .. } => reason,
        DataError::File(f) => f.reason(),
        other => other.to_string(),
    }
}

/// Decodes the files of a split into a data set of `opts.dims`, in
/// parallel; `progress` is told how many files are done (from any thread).
pub fn load_split(
    split: &FolderSplit,
    classes: &[String],
    opts: &ImageLoadOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<LoadedImages> {
    let per = opts
        .dims
        .checked_len()
        .filter(|&n| n > 0 && opts.dims.channels <= 3 && opts.dims.channels != 2)
        .ok_or_else(|| {
            DataError::arg(format!(
                "images are read as 1 (gray) or 3 (RGB) channels of at least 1x1, not {:?}",
                opts.dims
            ))
        })?;
    // one buffer for the whole split, each image decoded straight into its
    // slot (no second copy), then the slots of skipped files closed up
    let bytes = split.files.len().checked_mul(per);
    let mut pixels = Vec::new();
    if bytes.is_none_or(|b| pixels.try_reserve_exact(b).is_err()) {
        return Err(DataError::Alloc {
            file: split.dir.display().to_string(),
            bytes: (split.files.len() as u64).saturating_mul(per as u64),
        });
    }
    pixels.resize(split.files.len() * per, 0);
    let done = AtomicUsize::new(0);
    let results: Vec<Result<()>> = pixels
        .par_chunks_mut(per)
        .zip(split.files.par_iter())
        .map(|(slot, (path, _))| {
            let out =
                decode_file(path).map(|img| slot.copy_from_slice(&img.fit(opts.dims, opts.crop)));
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            out
        })
        .collect();
    let (mut labels, mut skipped, mut kept) = (Vec::new(), Vec::new(), 0);
    for (i, ((path, label), result)) in split.files.iter().zip(results).enumerate() {
        match result {
            Ok(()) => {
                pixels.copy_within(i * per..(i + 1) * per, kept * per);
                labels.push(*label);
                kept += 1;
            }
            Err(e) if opts.skip_bad => skipped.push((path.clone(), reason_of(e))),
            Err(e) => return Err(e),
        }
    }
    pixels.truncate(kept * per);
    let dataset = ImageDataset::new(pixels, labels, opts.dims, classes.to_vec())?;
    Ok(LoadedImages { dataset, skipped })
}
