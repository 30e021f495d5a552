//! The canonical files of the full data directory: names, sizes, checksums, sources.
//!
//! One table serves three users: the loaders (to say which files a missing
//! set needs), `cargo xtask data` (to verify a download and say what to
//! fetch), and the tests. Sizes and SHA-256 values are those of the shared
//! data folder's `SHA256SUMS`/README; for the IDX files the MD5 of the
//! *decompressed* content is also given, because copies of MNIST differ in
//! their gzip wrappers (stored file name, timestamp) but not in content.

use std::fmt;
use std::str::FromStr;

use crate::error::DataError;

/// The data sets (and pretrained models) a data directory can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamedSet {
    Mnist,
    FashionMnist,
    Digits,
    Shakespeare,
    Sentiment,
    Names,
    /// `pretrained/mnist-cnn`: a small CNN trained on MNIST.
    MnistCnn,
    /// `pretrained/char-lstm-textgenrnn`: textgenrnn's character LSTM.
    CharLstm,
}

/// Where a set comes from and under which terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetInfo {
    /// Name on the command line and in errors (`mnist`, `fashion-mnist`, ...).
    pub name: &'static str,
    /// Folder inside the data directory.
    pub folder: &'static str,
    /// One-line description.
    pub title: &'static str,
    /// Whether `cargo xtask data` fails when it is missing.
    pub required: bool,
    /// Where to get it.
    pub source: &'static str,
    /// Licence and attribution.
    pub license: &'static str,
}

impl NamedSet {
    /// Every set, data sets first.
    pub const ALL: [NamedSet; 8] = [
        NamedSet::Mnist,
        NamedSet::FashionMnist,
        NamedSet::Digits,
        NamedSet::Shakespeare,
        NamedSet::Sentiment,
        NamedSet::Names,
        NamedSet::MnistCnn,
        NamedSet::CharLstm,
    ];

    /// Provenance and licence.
    pub fn info(self) -> SetInfo {
        match self {
            NamedSet::Mnist => SetInfo {
                name: "mnist",
                folder: "mnist",
                title: "MNIST handwritten digits, IDX (60 000 train + 10 000 test, 28x28)",
                required: true,
                source: "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/); \
                         any copy whose decompressed files match the MD5s works",
                license: "no licence file; freely redistributed with attribution: Y. LeCun, L. Bottou, \
                          Y. Bengio, P. Haffner, Proc. IEEE 86(11), 1998",
            },
            NamedSet::FashionMnist => SetInfo {
                name: "fashion-mnist",
                folder: "fashion-mnist",
                title: "Fashion-MNIST clothing images, IDX (60 000 train + 10 000 test, 28x28)",
                required: true,
                source: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ \
                         (see https://github.com/zalandoresearch/fashion-mnist)",
                license: "MIT, Copyright (c) 2017 Zalando SE; cite Xiao, Rasul, Vollgraf, arXiv:1708.07747",
            },
            NamedSet::Digits => SetInfo {
                name: "digits",
                folder: "digits",
                title: "UCI optdigits test set, 8x8, 1797 rows (scikit-learn's digits.csv.gz)",
                required: true,
                source: "scikit-learn's repository, sklearn/datasets/data/digits.csv.gz \
                         (https://github.com/scikit-learn/scikit-learn)",
                license: "E. Alpaydin, C. Kaynak, UCI ML Repository (1998); scikit-learn copy BSD-3-Clause",
            },
            NamedSet::Shakespeare => SetInfo {
                name: "shakespeare",
                folder: "shakespeare",
                title: "Shakespeare's 42 works, plain text (Project Gutenberg editions, boilerplate removed)",
                required: true,
                source: "the project's shared data folder (Open Shakespeare / Project Gutenberg texts with \
                         the Gutenberg header and licence removed; no single upstream file matches)",
                license: "public domain texts; credit Open Shakespeare, Open Knowledge Foundation \
                          (CC BY 2.5) and Project Gutenberg",
            },
            NamedSet::Sentiment => SetInfo {
                name: "sentiment",
                folder: "sentiment-vader",
                title: "VADER sentence sentiment ground truth (movies, tweets, NYT, Amazon)",
                required: true,
                source: "https://github.com/cjhutto/vaderSentiment (additional_resources/hutto_ICWSM_2014.tar.gz)",
                license: "MIT, Copyright (c) 2016 C. J. Hutto; cite Hutto & Gilbert, ICWSM-14",
            },
            NamedSet::Names => SetInfo {
                name: "names",
                folder: "names-census1990",
                title: "1990 US Census first names by sex, with frequencies",
                required: true,
                source: "https://www2.census.gov/topics/genealogy/1990surnames/ (dist.male.first, dist.female.first)",
                license: "public domain (U.S. Census Bureau)",
            },
            NamedSet::MnistCnn => SetInfo {
                name: "mnist-cnn",
                folder: "pretrained/mnist-cnn",
                title: "pretrained MNIST CNN (99.05 % test accuracy); safetensors and PyTorch state_dict",
                required: false,
                source: "the project's shared data folder (ccexam project, FYS-8805 Collaborative Coding, UiT)",
                license: "MIT, Copyright (c) 2026 FYS-8805-Collaborative-Coding",
            },
            NamedSet::CharLstm => SetInfo {
                name: "char-lstm",
                folder: "pretrained/char-lstm-textgenrnn",
                title: "textgenrnn 2.0.0 character LSTM (converted to safetensors) and its vocabulary",
                required: false,
                source: "the project's shared data folder (converted from https://github.com/minimaxir/textgenrnn)",
                license: "MIT, Max Woolf",
            },
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The canonical files of this set.
    pub fn files(self) -> impl Iterator<Item = &'static FileSpec> {
        FILES.iter().filter(move |f| f.set == self)
    }

    /// Canonical file names (relative to the data directory) of this set.
    pub fn file_names(self) -> Vec<String> {
        self.files().map(|f| f.path.to_string()).collect()
    }
}

impl fmt::Display for NamedSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NamedSet {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        NamedSet::ALL
            .into_iter()
            .find(|set| set.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = NamedSet::ALL.iter().map(|s| s.name()).collect();
                DataError::arg(format!(
                    "unknown data set {s:?}; known: {}",
                    names.join(", ")
                ))
            })
    }
}

/// One canonical file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub set: NamedSet,
    /// Path relative to the data directory.
    pub path: &'static str,
    /// Size of the canonical copy in bytes.
    pub bytes: u64,
    /// SHA-256 of the canonical copy.
    pub sha256: &'static str,
    /// MD5 of the decompressed content, for gzip-wrapped IDX files whose
    /// wrapper legitimately differs between copies.
    pub content_md5: Option<&'static str>,
}

/// Every canonical file, as listed in the shared data folder's `SHA256SUMS`.
#[rustfmt::skip]
pub const FILES: &[FileSpec] = &[
    FileSpec { set: NamedSet::Digits, path: "digits/digits.csv.gz", bytes: 57523, sha256: "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22", content_md5: None },
    FileSpec { set: NamedSet::FashionMnist, path: "fashion-mnist/t10k-images-idx3-ubyte.gz", bytes: 4422102, sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", content_md5: Some("8181f5470baa50b63fa0f6fddb340f0a") },
    FileSpec { set: NamedSet::FashionMnist, path: "fashion-mnist/t10k-labels-idx1-ubyte.gz", bytes: 5148, sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", content_md5: Some("15d484375f8d13e6eb1aabb0c3f46965") },
    FileSpec { set: NamedSet::FashionMnist, path: "fashion-mnist/train-images-idx3-ubyte.gz", bytes: 26421880, sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", content_md5: Some("f4a8712d7a061bf5bd6d2ca38dc4d50a") },
    FileSpec { set: NamedSet::FashionMnist, path: "fashion-mnist/train-labels-idx1-ubyte.gz", bytes: 29515, sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", content_md5: Some("9018921c3c673c538a1fc5bad174d6f9") },
    FileSpec { set: NamedSet::Mnist, path: "mnist/t10k-images-idx3-ubyte.gz", bytes: 1648854, sha256: "c99a2fc9c8f7934dac9481251fc235227437fdcccfb8de53efcb767a8c3b057e", content_md5: Some("2646ac647ad5339dbf082846283269ea") },
    FileSpec { set: NamedSet::Mnist, path: "mnist/t10k-labels-idx1-ubyte.gz", bytes: 4519, sha256: "e2650e6732b191c90c7705906a2d65c6c0a20efb31f5c53d1b2b0bda74d911e9", content_md5: Some("27ae3e4e09519cfbb04c329615203637") },
    FileSpec { set: NamedSet::Mnist, path: "mnist/train-images-idx3-ubyte.gz", bytes: 9912398, sha256: "12bacf187eba4f770a04d97be5dbaad9289fe5d89a89729b6af3255c8bbfa9e1", content_md5: Some("6bbc9ace898e44ae57da46a324031adb") },
    FileSpec { set: NamedSet::Mnist, path: "mnist/train-labels-idx1-ubyte.gz", bytes: 28857, sha256: "7f4ede8117c9f121a708539f3c1b71dc8cb827447542df31cdf7b815d0762e1f", content_md5: Some("a25bea736e30d166cdddb491f175f624") },
    FileSpec { set: NamedSet::Names, path: "names-census1990/dist.female.first", bytes: 149625, sha256: "bd2f310fc4e5d5e5ea122c9d4342c9821145823118eb20db1647f305ec77b358", content_md5: None },
    FileSpec { set: NamedSet::Names, path: "names-census1990/dist.male.first", bytes: 42665, sha256: "0a5078ef6effe3b483d15b0f7f95047662126c9bfb624ecd5e5b978fc0f2470b", content_md5: None },
    FileSpec { set: NamedSet::CharLstm, path: "pretrained/char-lstm-textgenrnn/textgenrnn_char_lstm.safetensors", bytes: 1848020, sha256: "fcd925265f2191a4259baaf2583f3e7abc4a99c68aa1a397524f3240e0f13466", content_md5: None },
    FileSpec { set: NamedSet::CharLstm, path: "pretrained/char-lstm-textgenrnn/textgenrnn_vocab.json", bytes: 5079, sha256: "f9c6c0db9b07fb57da023d32df66e16a488d086c138e15706307bb5177c2be74", content_md5: None },
    FileSpec { set: NamedSet::MnistCnn, path: "pretrained/mnist-cnn/mnist_cnn.pth", bytes: 1689969, sha256: "0e58754afd96763e49f52c14877b8441cc0fff38e04adce2d2247eab68a30e8a", content_md5: None },
    FileSpec { set: NamedSet::MnistCnn, path: "pretrained/mnist-cnn/mnist_cnn.safetensors", bytes: 1687544, sha256: "2ed77d0ae48590ce62c7b7c9d1371674894df27ac062a7d7143c9f0e05c66f75", content_md5: None },
    FileSpec { set: NamedSet::Sentiment, path: "sentiment-vader/amazonReviewSnippets_GroundTruth.txt", bytes: 373157, sha256: "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2", content_md5: None },
    FileSpec { set: NamedSet::Sentiment, path: "sentiment-vader/movieReviewSnippets_GroundTruth.txt", bytes: 1383098, sha256: "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350", content_md5: None },
    FileSpec { set: NamedSet::Sentiment, path: "sentiment-vader/nytEditorialSnippets_GroundTruth.txt", bytes: 607629, sha256: "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e", content_md5: None },
    FileSpec { set: NamedSet::Sentiment, path: "sentiment-vader/tweets_GroundTruth.txt", bytes: 389886, sha256: "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/alls_well_that_ends_well_gut.txt", bytes: 133682, sha256: "59fdc8e61c63b960bf9030c0a126204d4c0c8c07e2ae62c9a7343ba51a39f6d4", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/antony_and_cleopatra_gut.txt", bytes: 151470, sha256: "4ee34c39371d05df790b880f2835521919dff45f7eec183855ff7dae1bac95e9", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/as_you_like_it_gut.txt", bytes: 125228, sha256: "5954146ea5d9231477fed18ee11e0f22267e4d4d4213a39d56e343047e6d8bdf", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/comedy_of_errors_gut.txt", bytes: 88209, sha256: "1e5f9faa9879d172aaaaf8828def61ad2a0c0ad1ecee149f634d65c3f67809e4", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/coriolanus_gut.txt", bytes: 164969, sha256: "c4f748c8d386f98db9d39e6cbac69913c940653a222eb847b608be64e4d66aeb", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/cymbeline_gut.txt", bytes: 98303, sha256: "7a8a994373868eb84d60c7e4c30a7865ed7fe90c74534cc37c173a3b80f98b21", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/hamlet_gut.txt", bytes: 173942, sha256: "bbe5635616c6e0e0bcf01b7b8c324be8b42451c51848f11c283bd2f4442b1e0a", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_iv_part_1_gut.txt", bytes: 138391, sha256: "f40b5de9ca126d9ff1c388d0648a2f19c3e7ad3ac80a9662579954bb2e7589f9", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_iv_part_2_gut.txt", bytes: 153117, sha256: "2898cb3be5e2691cc0310cc94fe70153e3245c88ec307b1b6d43315ec1ab28b2", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_v_gut.txt", bytes: 152768, sha256: "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_vi_part_1_gut.txt", bytes: 129800, sha256: "3598ca5644950f443225b86f4774772d12f12e6b95e33cac4f54d131004c2e19", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_vi_part_2_gut.txt", bytes: 148292, sha256: "c0d4023b61f2aa672fec92fd107a4a2ca3d79008749e3357efecc6a05ddf6603", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_vi_part_3_gut.txt", bytes: 144686, sha256: "82738995a59a5f18570f16b45503c3ade9ed7098ad3daa01bc963abf409491ff", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/henry_viii_gut.txt", bytes: 143482, sha256: "33cea8e4fd0a150ced19d1f08fee6df86bd692c1a41b4cdcfc387c47f1470ada", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/john_gut.txt", bytes: 121087, sha256: "635af28743587546b71008084f15714c9f4fa0a894766427c9b21c052306bf56", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/julius_caesar_gut.txt", bytes: 116216, sha256: "ee8ca8e9edb603625af98acb395fdd8c1a1697b064444a989dc21817b73ca7b5", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/lear_gut.txt", bytes: 151922, sha256: "7ac00e23da6e4874b715b3c3c0c1cdc442bc790eb6ac3f39c0610052e5e636fa", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/lovers_complaint_gut.txt", bytes: 14388, sha256: "29d51c72dbce8b70ae4afbe8d95f23eefff90649c138586eedab9cb56a6e4e1f", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/loves_labours_lost_gut.txt", bytes: 128644, sha256: "8858afe4d5b0d80936edc0346957f89aca9929de76c2763e76c10a9adb53b2a2", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/macbeth_gut.txt", bytes: 103427, sha256: "54e1d8055ffa2aec7e831ec43044dd646cacdfce5bf333fa81e6af9c0363c3b7", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/measure_for_measure_gut.txt", bytes: 126095, sha256: "373e7bad7682ef155ac631da7a4422b0b73c5e9ca84321ab37dac7cce9ba64d9", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/merchant_of_venice_gut.txt", bytes: 120445, sha256: "97642a677f13b095c481d712734876908db828624e01024a42f8b5ad93c6c599", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/merry_wives_of_windsor_gut.txt", bytes: 128164, sha256: "b435e5342e22a3681544b5e3bd65fce730edbb28495681a33a7567ddf9f6e5da", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/midsummer_nights_dream_gut.txt", bytes: 96249, sha256: "fe198104bcbcfa38bbf24c21073844dcbc5be6b8b7cd1bb76a68099f12667152", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/much_ado_about_nothing_gut.txt", bytes: 122354, sha256: "d47957039342adc96b4b4a3d3871a980de1193127c768b978d368f3d17625c50", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/othello_gut.txt", bytes: 154519, sha256: "12c32a0e148c3a2f4d9bb5710198f18cd04a5f8197f8cbeb25ca482174382d3d", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/passionate_pilgrim_gut.txt", bytes: 8505, sha256: "049824e1ca1ca007fb1f34e7d2d2b8325941d43e5bcf0b4e33a097fa50137e18", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/pericles_gut.txt", bytes: 108950, sha256: "113765d4bd41dfbd7faba192b4a5a20d53fed0da8544b59e4e6a30c6c45eac30", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/phoenix_and_the_turtle_gut.txt", bytes: 2096, sha256: "0e6165e3ff24f434a020a9e5a14d2f2eea7e24451a726bf059b0d8ac6cfd46ec", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/rape_of_lucrece_gut.txt", bytes: 86173, sha256: "4ceec0cde4609846a079dbde54c7bd3f80f3a961f24aa6d814983eeea29dffcc", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/richard_ii_gut.txt", bytes: 130293, sha256: "8ac6a1bac1b42517b70384a1645af44f2db9052d6b9eb508f1135bf8a29513df", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/richard_iii_gut.txt", bytes: 175659, sha256: "98140214b31451a5b9e4af8bdae9ec1c24cb0966aeabbcaed21d11c8364fe9d9", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/romeo_and_juliet_gut.txt", bytes: 141753, sha256: "6a5e0c9ee103a9bd95d8b045f5c53f66779b45b198788db458075f828a0425f4", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/sonnets_gut.txt", bytes: 95728, sha256: "edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/taming_of_the_shrew_gut.txt", bytes: 123283, sha256: "63952a385bfe626dfc4d1af732582b4c734e4134eaa8470cc85b57984e7e7d36", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/tempest_gut.txt", bytes: 98439, sha256: "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/timon_of_athens_gut.txt", bytes: 111091, sha256: "e06be61630cfc3b60aa817034c7eabe0f941c28bf46ad18ad8e0332ff6232d07", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/tragedy_of_titus_andronicus_gut.txt", bytes: 120441, sha256: "6ebff81eb9567ddcd9184e7bf7f35f4e5bdb75a8b7a02db4fe24bf118f562e84", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/troilus_and_cressida_gut.txt", bytes: 156291, sha256: "d8900eea5aa6df25f79151994fba50753ad88cec14d825bb0fb1ee88ac7c6772", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/twelfth_night_gut.txt", bytes: 114876, sha256: "bb5b25bd3fe7a34776cab3f6205b410fa442059657aba082334edc80eea958ef", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/two_gentlemen_of_verona_gut.txt", bytes: 100983, sha256: "26d11defe685c4c34333ee7772c34a0594a8497307f9e8cfb01dac0811505428", content_md5: None },
    FileSpec { set: NamedSet::Shakespeare, path: "shakespeare/winters_tale_gut.txt", bytes: 152788, sha256: "06b39203a7b376902a73d8539eb9f0de4f4246cee0a9bfc6a30a9256d9250393", content_md5: None },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_set_has_files() {
        for set in NamedSet::ALL {
            assert_eq!(set.name().parse::<NamedSet>().unwrap(), set);
            assert!(set.files().count() > 0, "{set}");
            assert!(set.files().all(|f| f.path.starts_with(set.info().folder)));
        }
        assert!("cifar".parse::<NamedSet>().is_err());
        assert_eq!(NamedSet::Shakespeare.files().count(), 42);
        assert_eq!(FILES.len(), 61);
    }
}
