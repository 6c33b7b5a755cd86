//! FTP commands: one variant per verb, parsed from one control-connection line.
//!
//! Verbs are matched case-insensitively (RFC 959 §5.3). Arguments are everything after the first
//! space, kept verbatim (a file name may begin or end with spaces) except where the grammar is a
//! keyword or a number. Arguments must be UTF-8 (RFC 2640).

use core::fmt;
use core::net::{SocketAddr, SocketAddrV4};

use crate::addr::{self, AddrError, EpsvArg};
use crate::text::parse_u64;

/// The representation type set by TYPE (RFC 959 §3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A` (optionally `A N`): line endings converted to CRLF on the wire.
    Ascii,
    /// `TYPE I` or `TYPE L 8`: bytes as they are.
    Image,
}

/// One parsed control-connection command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// USER name (RFC 959 §4.1.1).
    User(&'a str),
    /// PASS password.
    Pass(&'a str),
    /// ACCT account.
    Acct(&'a str),
    /// SYST.
    Syst,
    /// FEAT (RFC 2389).
    Feat,
    /// OPTS command-name options (RFC 2389).
    Opts(&'a str),
    /// HELP, with an optional topic.
    Help(Option<&'a str>),
    /// NOOP.
    Noop,
    /// STAT, with an optional path.
    Stat(Option<&'a str>),
    /// QUIT.
    Quit,
    /// REIN.
    Rein,
    /// PWD / XPWD.
    Pwd,
    /// CWD / XCWD path.
    Cwd(&'a str),
    /// CDUP / XCUP.
    Cdup,
    /// MKD / XMKD path.
    Mkd(&'a str),
    /// RMD / XRMD path.
    Rmd(&'a str),
    /// DELE path.
    Dele(&'a str),
    /// RNFR path.
    Rnfr(&'a str),
    /// RNTO path.
    Rnto(&'a str),
    /// SIZE path (RFC 3659 §4).
    Size(&'a str),
    /// MDTM path (RFC 3659 §3).
    Mdtm(&'a str),
    /// MFMT time path (draft-somers-ftp-mfxx): the time is still text, checked by the session.
    Mfmt {
        /// `YYYYMMDDHHMMSS`.
        time: &'a str,
        /// The file.
        path: &'a str,
    },
    /// TYPE A | I | L 8.
    Type(TransferType),
    /// MODE S (the only mode supported).
    Mode,
    /// STRU F (the only structure supported).
    Stru,
    /// ALLO (superfluous here).
    Allo,
    /// REST offset (RFC 3659 §5, stream mode).
    Rest(u64),
    /// RETR path.
    Retr(&'a str),
    /// STOR path.
    Stor(&'a str),
    /// STOU, with an optional name hint.
    Stou(Option<&'a str>),
    /// APPE path.
    Appe(&'a str),
    /// LIST, with an optional path (leading `ls`-style flags such as `-la` removed: [`LIST_FLAGS`]).
    List(Option<&'a str>),
    /// NLST, with an optional path (flags removed as for LIST).
    Nlst(Option<&'a str>),
    /// MLSD, with an optional path (RFC 3659 §7).
    Mlsd(Option<&'a str>),
    /// MLST, with an optional path (RFC 3659 §7).
    Mlst(Option<&'a str>),
    /// PASV.
    Pasv,
    /// EPSV with an optional 1, 2 or ALL (RFC 2428 §3).
    Epsv(EpsvArg),
    /// PORT h1,h2,h3,h4,p1,p2.
    Port(SocketAddrV4),
    /// EPRT |proto|addr|port| (RFC 2428 §2).
    Eprt(SocketAddr),
    /// ABOR.
    Abor,
    /// SITE subcommand.
    Site(&'a str),
    /// AUTH mechanism (RFC 2228/4217).
    Auth(&'a str),
    /// PBSZ size (RFC 2228).
    Pbsz(&'a str),
    /// PROT level (RFC 2228).
    Prot(&'a str),
    /// CCC (RFC 2228).
    Ccc,
    /// HASH path (draft-bryan-ftp-hash): the checksum of a file with the session's algorithm.
    Hash(&'a str),
    /// XSHA256, XSHA1, XMD5 or XCRC path: the checksum of a file with the algorithm the verb names
    /// (the commands some clients send where HASH is missing; no range arguments).
    XHash(HashAlgorithm, &'a str),
    /// A standard verb Ferry knows but does not implement (SMNT, LPRT, LPSV, ...): 502.
    NotImplemented(&'static str),
}

/// A checksum algorithm of HASH (draft-bryan-ftp-hash §3) and its X-command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-256 (FIPS 180-4), the default.
    Sha256,
    /// SHA-1 (FIPS 180-4).
    Sha1,
    /// MD5 (RFC 1321).
    Md5,
    /// CRC-32 (ISO 3309, as zlib's `crc32`).
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [Self; 4] = [Self::Sha256, Self::Sha1, Self::Md5, Self::Crc32];

    /// The name HASH, OPTS HASH and FEAT use: `SHA-256`, `SHA-1`, `MD5` or `CRC32`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha1 => "SHA-1",
            Self::Md5 => "MD5",
            Self::Crc32 => "CRC32",
        }
    }

    /// The algorithm `name` names (case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// Why a line is not a command Ferry can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Empty line or unknown verb: 500.
    Unknown,
    /// A required argument is missing or malformed, or not UTF-8: 501.
    BadArguments,
    /// The parameter is understood but not supported (TYPE E, MODE B, STRU R...): 504.
    UnsupportedParameter,
    /// EPRT/EPSV with a network protocol other than IPv4/IPv6: 522.
    UnsupportedFamily,
}

impl ParseError {
    /// The text of the reply, as [`Display`](fmt::Display) writes it.
    pub fn text(self) -> &'static str {
        match self {
            Self::Unknown => "Syntax error, command unrecognized",
            Self::BadArguments => "Syntax error in parameters or arguments",
            Self::UnsupportedParameter => "Command not implemented for that parameter",
            Self::UnsupportedFamily => "Network protocol not supported, use (1,2)",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A verb Ferry knows, found in [`VERBS`]; the parser turns it and the argument into a [`Command`].
#[derive(Clone, Copy)]
enum Verb {
    User,
    Pass,
    Acct,
    Syst,
    Feat,
    Opts,
    Help,
    Noop,
    Stat,
    Quit,
    Rein,
    Pwd,
    Cwd,
    Cdup,
    Mkd,
    Rmd,
    Dele,
    Rnfr,
    Rnto,
    Size,
    Mdtm,
    Mfmt,
    Type,
    Mode,
    Stru,
    Allo,
    Rest,
    Retr,
    Stor,
    Stou,
    Appe,
    List,
    Nlst,
    Mlsd,
    Mlst,
    Pasv,
    Epsv,
    Port,
    Eprt,
    Abor,
    Site,
    Auth,
    Pbsz,
    Prot,
    Ccc,
    Smnt,
    Lprt,
    Lpsv,
    Security,
    Hash,
    XHash(HashAlgorithm),
}

/// The verbs longer than four letters, apart so that [`VERBS`] keeps its four-byte keys.
const LONG_VERBS: [(&[u8], Verb); 2] = [
    (b"XSHA1", Verb::XHash(HashAlgorithm::Sha1)),
    (b"XSHA256", Verb::XHash(HashAlgorithm::Sha256)),
];

/// Every verb of up to four letters (upper case, padded with NUL to four bytes), what it is, and whether it needs an
/// argument (one that is missing or empty gets 501). One table rather than a `match` on strings: a
/// linear search of four-byte keys is a fraction of the code (the engine's flash matters on a
/// microcontroller, docs/embedded.md).
const VERBS: [([u8; 4], Verb, bool); 60] = [
    (*b"USER", Verb::User, true),
    (*b"PASS", Verb::Pass, false),
    (*b"ACCT", Verb::Acct, true),
    (*b"SYST", Verb::Syst, false),
    (*b"FEAT", Verb::Feat, false),
    (*b"OPTS", Verb::Opts, true),
    (*b"HELP", Verb::Help, false),
    (*b"NOOP", Verb::Noop, false),
    (*b"STAT", Verb::Stat, false),
    (*b"QUIT", Verb::Quit, false),
    (*b"REIN", Verb::Rein, false),
    (*b"PWD\0", Verb::Pwd, false),
    (*b"XPWD", Verb::Pwd, false),
    (*b"CWD\0", Verb::Cwd, true),
    (*b"XCWD", Verb::Cwd, true),
    (*b"CDUP", Verb::Cdup, false),
    (*b"XCUP", Verb::Cdup, false),
    (*b"MKD\0", Verb::Mkd, true),
    (*b"XMKD", Verb::Mkd, true),
    (*b"RMD\0", Verb::Rmd, true),
    (*b"XRMD", Verb::Rmd, true),
    (*b"DELE", Verb::Dele, true),
    (*b"RNFR", Verb::Rnfr, true),
    (*b"RNTO", Verb::Rnto, true),
    (*b"SIZE", Verb::Size, true),
    (*b"MDTM", Verb::Mdtm, true),
    (*b"MFMT", Verb::Mfmt, true),
    (*b"TYPE", Verb::Type, true),
    (*b"MODE", Verb::Mode, true),
    (*b"STRU", Verb::Stru, true),
    (*b"ALLO", Verb::Allo, false),
    (*b"REST", Verb::Rest, true),
    (*b"RETR", Verb::Retr, true),
    (*b"STOR", Verb::Stor, true),
    (*b"STOU", Verb::Stou, false),
    (*b"APPE", Verb::Appe, true),
    (*b"LIST", Verb::List, false),
    (*b"NLST", Verb::Nlst, false),
    (*b"MLSD", Verb::Mlsd, false),
    (*b"MLST", Verb::Mlst, false),
    (*b"PASV", Verb::Pasv, false),
    (*b"EPSV", Verb::Epsv, false),
    (*b"PORT", Verb::Port, true),
    (*b"EPRT", Verb::Eprt, true),
    (*b"ABOR", Verb::Abor, false),
    (*b"SITE", Verb::Site, true),
    (*b"AUTH", Verb::Auth, true),
    (*b"PBSZ", Verb::Pbsz, true),
    (*b"PROT", Verb::Prot, true),
    (*b"CCC\0", Verb::Ccc, false),
    (*b"SMNT", Verb::Smnt, false),
    (*b"LPRT", Verb::Lprt, false),
    (*b"LPSV", Verb::Lpsv, false),
    (*b"MIC\0", Verb::Security, false),
    (*b"CONF", Verb::Security, false),
    (*b"ENC\0", Verb::Security, false),
    (*b"ADAT", Verb::Security, false),
    (*b"HASH", Verb::Hash, true),
    (*b"XMD5", Verb::XHash(HashAlgorithm::Md5), true),
    (*b"XCRC", Verb::XHash(HashAlgorithm::Crc32), true),
];

impl<'a> Command<'a> {
    /// Parses one line (without its CRLF).
    ///
    /// # Errors
    /// A [`ParseError`] naming the reply class (500, 501, 504 or 522).
    pub fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if verb.is_empty() || verb.len() > 7 || !verb.iter().all(u8::is_ascii_alphanumeric) {
            return Err(ParseError::Unknown);
        }
        let (verb, needs_arg) = if verb.len() > 4 {
            let &(_, v) = LONG_VERBS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(verb))
                .ok_or(ParseError::Unknown)?;
            (v, true)
        } else {
            let mut key = [0u8; 4];
            for (d, s) in key.iter_mut().zip(verb) {
                *d = s.to_ascii_uppercase();
            }
            let &(_, v, needs_arg) = VERBS
                .iter()
                .find(|(name, _, _)| *name == key)
                .ok_or(ParseError::Unknown)?;
            (v, needs_arg)
        };
        let arg = match arg {
            Some(a) => Some(core::str::from_utf8(a).map_err(|_| ParseError::BadArguments)?),
            None => None,
        };
        // An argument that is present but empty counts as absent.
        let arg = arg.filter(|a| !a.is_empty());
        if needs_arg && arg.is_none() {
            return Err(ParseError::BadArguments);
        }
        // Checked above for the verbs that need one.
        let a = arg.unwrap_or("");
        Ok(match verb {
            Verb::User => Command::User(a),
            Verb::Pass => Command::Pass(a),
            Verb::Acct => Command::Acct(a),
            Verb::Syst => Command::Syst,
            Verb::Feat => Command::Feat,
            Verb::Opts => Command::Opts(a),
            Verb::Help => Command::Help(arg),
            Verb::Noop => Command::Noop,
            Verb::Stat => Command::Stat(arg.and_then(strip_list_flags)),
            Verb::Quit => Command::Quit,
            Verb::Rein => Command::Rein,
            Verb::Pwd => Command::Pwd,
            Verb::Cwd => Command::Cwd(a),
            Verb::Cdup => Command::Cdup,
            Verb::Mkd => Command::Mkd(a),
            Verb::Rmd => Command::Rmd(a),
            Verb::Dele => Command::Dele(a),
            Verb::Rnfr => Command::Rnfr(a),
            Verb::Rnto => Command::Rnto(a),
            Verb::Size => Command::Size(a),
            Verb::Mdtm => Command::Mdtm(a),
            Verb::Mfmt => {
                let i = a.bytes().position(|b| b == b' ');
                match i.map(|i| (&a[..i], &a[i + 1..])) {
                    Some((time, path)) if !path.is_empty() => Command::Mfmt { time, path },
                    _ => return Err(ParseError::BadArguments),
                }
            }
            Verb::Type => Command::Type(parse_type(a)?),
            Verb::Mode => one_of(a, b'S', b"BC").map(|()| Command::Mode)?,
            Verb::Stru => one_of(a, b'F', b"RP").map(|()| Command::Stru)?,
            Verb::Allo => Command::Allo,
            Verb::Rest => Command::Rest(parse_u64(a.trim_ascii()).ok_or(ParseError::BadArguments)?),
            Verb::Retr => Command::Retr(a),
            Verb::Stor => Command::Stor(a),
            Verb::Stou => Command::Stou(arg),
            Verb::Appe => Command::Appe(a),
            Verb::List => Command::List(arg.and_then(strip_list_flags)),
            Verb::Nlst => Command::Nlst(arg.and_then(strip_list_flags)),
            Verb::Mlsd => Command::Mlsd(arg),
            Verb::Mlst => Command::Mlst(arg),
            Verb::Pasv => Command::Pasv,
            Verb::Epsv => Command::Epsv(addr::parse_epsv_arg(a).map_err(addr_error)?),
            Verb::Port => Command::Port(addr::parse_port(a).map_err(addr_error)?),
            Verb::Eprt => Command::Eprt(addr::parse_eprt(a).map_err(addr_error)?),
            Verb::Abor => Command::Abor,
            Verb::Site => Command::Site(a),
            Verb::Auth => Command::Auth(a),
            Verb::Pbsz => Command::Pbsz(a),
            Verb::Prot => Command::Prot(a),
            Verb::Ccc => Command::Ccc,
            Verb::Smnt => Command::NotImplemented("SMNT"),
            Verb::Lprt => Command::NotImplemented("LPRT"),
            Verb::Lpsv => Command::NotImplemented("LPSV"),
            Verb::Security => Command::NotImplemented("security extension"),
            Verb::Hash => Command::Hash(a),
            Verb::XHash(algorithm) => Command::XHash(algorithm, a),
        })
    }

    /// The verb in upper case, for logs (never includes arguments, so no password is logged).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Help(_) => "HELP",
            Command::Noop => "NOOP",
            Command::Stat(_) => "STAT",
            Command::Quit => "QUIT",
            Command::Rein => "REIN",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Dele(_) => "DELE",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt { .. } => "MFMT",
            Command::Type(_) => "TYPE",
            Command::Mode => "MODE",
            Command::Stru => "STRU",
            Command::Allo => "ALLO",
            Command::Rest(_) => "REST",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Stou(_) => "STOU",
            Command::Appe(_) => "APPE",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Abor => "ABOR",
            Command::Site(_) => "SITE",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
            Command::Hash(_) => "HASH",
            Command::XHash(a, _) => match a {
                HashAlgorithm::Sha256 => "XSHA256",
                HashAlgorithm::Sha1 => "XSHA1",
                HashAlgorithm::Md5 => "XMD5",
                HashAlgorithm::Crc32 => "XCRC",
            },
            Command::NotImplemented(v) => v,
        }
    }
}

fn addr_error(e: AddrError) -> ParseError {
    match e {
        AddrError::UnsupportedFamily => ParseError::UnsupportedFamily,
        _ => ParseError::BadArguments,
    }
}

fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let mut parts = arg
        .as_bytes()
        .split(|&b| b == b' ')
        .filter(|p| !p.is_empty());
    let (Some(first), second, None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::BadArguments);
    };
    match (letter(first), second) {
        (b'A', None) => Ok(TransferType::Ascii),
        (b'A', Some(f)) if letter(f) == b'N' => Ok(TransferType::Ascii),
        (b'A', Some(f)) if matches!(letter(f), b'T' | b'C') => {
            Err(ParseError::UnsupportedParameter)
        }
        (b'I', None) => Ok(TransferType::Image),
        (b'L', Some(b"8")) => Ok(TransferType::Image),
        (b'L', Some(_)) | (b'E', _) => Err(ParseError::UnsupportedParameter),
        _ => Err(ParseError::BadArguments),
    }
}

/// The upper-case letter a one-byte word is, or 0.
fn letter(word: &[u8]) -> u8 {
    match word {
        [b] => b.to_ascii_uppercase(),
        _ => 0,
    }
}

/// Checks a one-letter argument (MODE, STRU): `ok` is accepted, a letter in `unsupported` is 504,
/// anything else 501. Surrounding ASCII whitespace is ignored.
fn one_of(arg: &str, ok: u8, unsupported: &[u8]) -> Result<(), ParseError> {
    match letter(arg.trim_ascii().as_bytes()) {
        l if l == ok => Ok(()),
        l if l != 0 && unsupported.contains(&l) => Err(ParseError::UnsupportedParameter),
        _ => Err(ParseError::BadArguments),
    }
}

/// The `ls` flag letters LIST, NLST and STAT accept (and ignore: the listing format is the command's):
/// `-1` (one per line, what `ncftpls` sends with NLST), `-a`/`-A` (dot files: always listed), `-l`,
/// `-C`, `-F`, `-d`, `-h`, `-L`, `-n`, `-r`, `-R`, `-S`, `-t`.
pub const LIST_FLAGS: &[u8] = b"1aAlCFdhLnrRSt";

/// Removes leading `ls`-style flags (`-a`, `-l`, `-la`, `-1`, ...) from a LIST/NLST/STAT argument, as
/// common servers do. Returns the remaining path, or `None` when only flags were given.
///
/// The rule: a leading word that starts with `-` and holds only letters of [`LIST_FLAGS`] is flags;
/// any other word (`-x`, `-1.txt`, `--`) starts the path. A file whose name is such a word is reached
/// as `./-1`.
fn strip_list_flags(arg: &str) -> Option<&str> {
    let b = arg.as_bytes();
    let skip_spaces = |mut i: usize| {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        i
    };
    // `rest` starts after the last flag word (at the space that ended it), or is the whole argument.
    let mut rest = 0;
    loop {
        let word = skip_spaces(rest);
        if b.get(word) != Some(&b'-') {
            break;
        }
        let end = b[word..]
            .iter()
            .position(|&c| c == b' ')
            .map_or(b.len(), |n| word + n);
        let flags = &b[word + 1..end];
        if flags.is_empty() || !flags.iter().all(|f| LIST_FLAGS.contains(f)) {
            break;
        }
        rest = end;
    }
    let start = if b.get(rest) == Some(&b' ') {
        rest + 1
    } else {
        rest
    };
    let tail = &arg[start..];
    if tail.trim_ascii().is_empty() {
        None
    } else if rest > 0 {
        // Flags were removed: spaces between flags and the path are separators.
        Some(&arg[skip_spaces(start)..])
    } else {
        Some(tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn p(s: &str) -> Result<Command<'_>, ParseError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(p("user bob"), Ok(Command::User("bob")));
        assert_eq!(p("XpWd"), Ok(Command::Pwd));
        assert_eq!(p("cdup"), Ok(Command::Cdup));
    }

    #[test]
    fn hash_verbs_parse_up_to_seven_characters() {
        assert_eq!(p("HASH a b"), Ok(Command::Hash("a b")));
        assert_eq!(
            p("xsha256 f"),
            Ok(Command::XHash(HashAlgorithm::Sha256, "f"))
        );
        assert_eq!(p("XSHA1 f"), Ok(Command::XHash(HashAlgorithm::Sha1, "f")));
        assert_eq!(p("XMD5 f"), Ok(Command::XHash(HashAlgorithm::Md5, "f")));
        assert_eq!(p("XCRC f"), Ok(Command::XHash(HashAlgorithm::Crc32, "f")));
        assert_eq!(p("XSHA256"), Err(ParseError::BadArguments));
        assert_eq!(p("HASH"), Err(ParseError::BadArguments));
        assert_eq!(p("XSHA512 f"), Err(ParseError::Unknown));
        assert_eq!(p("XSHA2567 f"), Err(ParseError::Unknown));
        assert_eq!(p("X-SHA1 f"), Err(ParseError::Unknown));
        assert_eq!(HashAlgorithm::from_name("sha-1"), Some(HashAlgorithm::Sha1));
        assert_eq!(HashAlgorithm::from_name("SHA1"), None);
        assert_eq!(p("XSHA256 f").map(|c| c.verb()), Ok("XSHA256"));
    }

    #[test]
    fn args_are_verbatim() {
        assert_eq!(p("STOR  a b "), Ok(Command::Stor(" a b ")));
        assert_eq!(p("RETR -rf"), Ok(Command::Retr("-rf")));
        assert_eq!(p("CWD ünï"), Ok(Command::Cwd("ünï")));
    }

    #[test]
    fn errors() {
        assert_eq!(p(""), Err(ParseError::Unknown));
        assert_eq!(p("FOOBAR x"), Err(ParseError::Unknown));
        assert_eq!(p("XYZ"), Err(ParseError::Unknown));
        assert_eq!(p("RETR"), Err(ParseError::BadArguments));
        assert_eq!(p("RETR "), Err(ParseError::BadArguments));
        assert_eq!(
            Command::parse(b"RETR \xff\xfe"),
            Err(ParseError::BadArguments)
        );
        assert_eq!(p("REST abc"), Err(ParseError::BadArguments));
        assert_eq!(
            p("REST 99999999999999999999999"),
            Err(ParseError::BadArguments)
        );
        assert_eq!(p("TYPE E"), Err(ParseError::UnsupportedParameter));
        assert_eq!(p("TYPE Q"), Err(ParseError::BadArguments));
        assert_eq!(p("MODE B"), Err(ParseError::UnsupportedParameter));
        assert_eq!(p("STRU R"), Err(ParseError::UnsupportedParameter));
        assert_eq!(p("EPRT |3|x|1|"), Err(ParseError::UnsupportedFamily));
        assert_eq!(p("EPRT garbage"), Err(ParseError::BadArguments));
        assert_eq!(p("PORT 1,2,3"), Err(ParseError::BadArguments));
        assert_eq!(p("MFMT 20200101000000"), Err(ParseError::BadArguments));
    }

    #[test]
    fn typed_arguments() {
        assert_eq!(p("TYPE A"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(p("TYPE a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(p("TYPE I"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(p("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(p("REST 5000000000"), Ok(Command::Rest(5_000_000_000)));
        assert_eq!(
            p("PORT 127,0,0,1,4,1"),
            Ok(Command::Port(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1025)))
        );
        assert_eq!(p("EPSV"), Ok(Command::Epsv(EpsvArg::Any)));
        assert_eq!(p("EPSV ALL"), Ok(Command::Epsv(EpsvArg::All)));
        assert_eq!(
            p("MFMT 20200101000000 a b"),
            Ok(Command::Mfmt {
                time: "20200101000000",
                path: "a b"
            })
        );
    }

    #[test]
    fn every_verb_in_the_table_parses() {
        for (name, _, needs_arg) in VERBS {
            let verb = core::str::from_utf8(&name)
                .unwrap_or("")
                .trim_end_matches('\0');
            let lower = verb.to_ascii_lowercase();
            let arg = match verb {
                "TYPE" => " I",
                "MODE" => " S",
                "STRU" => " F",
                "REST" => " 1",
                "PORT" => " 10,0,0,1,4,1",
                "EPRT" => " |1|10.0.0.1|1025|",
                "MFMT" => " 20200101000000 f",
                "EPSV" => " 2",
                _ => " x y",
            };
            let line = alloc::format!("{lower}{arg}");
            let parsed = p(&line);
            assert!(parsed.is_ok(), "{verb}: {parsed:?}");
            if needs_arg {
                assert_eq!(p(verb), Err(ParseError::BadArguments), "{verb}");
            } else {
                assert!(p(verb).is_ok(), "{verb}");
            }
            let verb_of = parsed.map(|c| c.verb()).unwrap_or("");
            assert!(
                verb_of == verb
                    || verb_of == &verb[1..]
                    || (verb, verb_of) == ("XCUP", "CDUP")
                    || verb_of == "security extension",
                "{verb} reports {verb_of}"
            );
        }
        assert_eq!(p("MODE  s "), Ok(Command::Mode));
        assert_eq!(p("MODE SS"), Err(ParseError::BadArguments));
        assert_eq!(p("STRU p"), Err(ParseError::UnsupportedParameter));
        assert_eq!(p("TYPE A T"), Err(ParseError::UnsupportedParameter));
        assert_eq!(p("TYPE A X"), Err(ParseError::BadArguments));
        assert_eq!(p("TYPE A N X"), Err(ParseError::BadArguments));
        assert_eq!(p("TYPE L 7"), Err(ParseError::UnsupportedParameter));
    }

    #[test]
    fn list_flags_are_ignored() {
        assert_eq!(p("LIST -la"), Ok(Command::List(None)));
        assert_eq!(p("LIST -a -l dir"), Ok(Command::List(Some("dir"))));
        assert_eq!(p("LIST dir name"), Ok(Command::List(Some("dir name"))));
        assert_eq!(p("NLST -l"), Ok(Command::Nlst(None)));
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(p("LIST -1"), Ok(Command::List(None)));
        assert_eq!(p("NLST -1"), Ok(Command::Nlst(None)));
        assert_eq!(p("NLST -1a dir"), Ok(Command::Nlst(Some("dir"))));
        assert_eq!(p("NLST -aC1F d/*"), Ok(Command::Nlst(Some("d/*"))));
        assert_eq!(p("LIST -la"), Ok(Command::List(None)));
        assert_eq!(p("STAT -l dir"), Ok(Command::Stat(Some("dir"))));
        // Words that are not only flag letters are the path.
        assert_eq!(p("NLST ./-1"), Ok(Command::Nlst(Some("./-1"))));
        assert_eq!(p("NLST -x"), Ok(Command::Nlst(Some("-x"))));
        assert_eq!(p("NLST -1.txt"), Ok(Command::Nlst(Some("-1.txt"))));
        assert_eq!(p("LIST -l -zz"), Ok(Command::List(Some("-zz"))));
    }
}
