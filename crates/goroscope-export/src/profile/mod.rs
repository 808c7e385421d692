//! Profile outputs: one [`Profile`](goroscope_model::profile::Profile) rendered as pprof's
//! gzipped protobuf ([`pprof`]), folded stacks ([`folded`]), an SVG flame graph
//! ([`flame_graph`]) or a `pprof -top`-like text table ([`top_table`]); [`ProfileFormat`]
//! names them for the command line and picks one from a file name.

mod flame;
mod folded;
mod pprof;
mod proto;
mod top;

pub(crate) use top::three_digits;

#[cfg(test)]
mod fixtures;

use std::path::Path;

pub use flame::{flame_graph, FlameGraphError};
pub use folded::folded;
pub(crate) use folded::folded_stacks;
pub use pprof::pprof;
pub use top::top_table;
pub(crate) use top::totals as function_totals;

/// A way to write a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileFormat {
    /// pprof's gzip-compressed protobuf ([`pprof`]).
    Pprof,
    /// Folded stacks ([`folded`]).
    Folded,
    /// An SVG flame graph ([`flame_graph`]).
    Svg,
    /// A top table ([`top_table`]).
    Text,
}

impl ProfileFormat {
    /// Every format, in the order help texts list them.
    pub const ALL: [ProfileFormat; 4] = [
        ProfileFormat::Pprof,
        ProfileFormat::Folded,
        ProfileFormat::Svg,
        ProfileFormat::Text,
    ];

    /// The name used on the command line: `pprof`, `folded`, `svg` or `text`.
    pub fn name(self) -> &'static str {
        match self {
            ProfileFormat::Pprof => "pprof",
            ProfileFormat::Folded => "folded",
            ProfileFormat::Svg => "svg",
            ProfileFormat::Text => "text",
        }
    }

    /// Parses a [`ProfileFormat::name`].
    pub fn parse(name: &str) -> Option<ProfileFormat> {
        ProfileFormat::ALL
            .into_iter()
            .find(|format| format.name() == name)
    }

    /// The format a file name asks for, by its extension (any case): `.pb.gz`, `.pb` and
    /// `.pprof` for pprof, `.folded` for folded stacks, `.svg` for a flame graph, `.txt` for
    /// a top table. `None` for anything else.
    pub fn from_path(path: &Path) -> Option<ProfileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        const SUFFIXES: [(&str, ProfileFormat); 6] = [
            (".pb.gz", ProfileFormat::Pprof),
            (".pb", ProfileFormat::Pprof),
            (".pprof", ProfileFormat::Pprof),
            (".folded", ProfileFormat::Folded),
            (".svg", ProfileFormat::Svg),
            (".txt", ProfileFormat::Text),
        ];
        SUFFIXES
            .into_iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
            .map(|(_, format)| format)
    }
}

impl std::fmt::Display for ProfileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::ProfileFormat;

    #[test]
    fn formats_come_from_names_and_file_extensions() {
        for format in ProfileFormat::ALL {
            assert_eq!(ProfileFormat::parse(format.name()), Some(format));
        }
        assert_eq!(ProfileFormat::parse("flamegraph"), None);
        assert_eq!(ProfileFormat::parse("SVG"), None);
        let cases = [
            ("/tmp/cpu.pb.gz", Some(ProfileFormat::Pprof)),
            ("cpu.pb", Some(ProfileFormat::Pprof)),
            ("out/cpu.PPROF", Some(ProfileFormat::Pprof)),
            ("cpu.folded", Some(ProfileFormat::Folded)),
            ("flame.svg", Some(ProfileFormat::Svg)),
            ("top.txt", Some(ProfileFormat::Text)),
            ("cpu.gz", None),
            ("cpu.json", None),
            (".svg", None),
            ("svg", None),
            ("/", None),
        ];
        for (path, format) in cases {
            assert_eq!(ProfileFormat::from_path(Path::new(path)), format, "{path}");
        }
    }
}
