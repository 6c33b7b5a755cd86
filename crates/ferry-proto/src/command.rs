//! FTP commands: one variant per verb, parsed from one control-connection line.
//!
//! Verbs are matched case-insensitively (RFC 959 §5.3). Arguments are everything after the first
//! space, kept verbatim (a file name may begin or end with spaces) except where the grammar is a
//! keyword or a number. Arguments must be UTF-8 (RFC 2640).

use core::fmt;
use core::net::{SocketAddr, SocketAddrV4};

use crate::addr::{self, AddrError, EpsvArg};

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
    /// LIST, with an optional path (leading `-a`/`-l` style flags removed).
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
    /// A standard verb Ferry knows but does not implement (SMNT, LPRT, LPSV, ...): 502.
    NotImplemented(&'static str),
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

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "Syntax error, command unrecognized",
            Self::BadArguments => "Syntax error in parameters or arguments",
            Self::UnsupportedParameter => "Command not implemented for that parameter",
            Self::UnsupportedFamily => "Network protocol not supported, use (1,2)",
        })
    }
}

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
        if verb.is_empty() || verb.len() > 4 || !verb.iter().all(u8::is_ascii_alphabetic) {
            return Err(ParseError::Unknown);
        }
        let mut upper = [0u8; 4];
        for (d, s) in upper.iter_mut().zip(verb) {
            *d = s.to_ascii_uppercase();
        }
        let verb = &upper[..verb.len()];
        let arg = match arg {
            Some(a) => Some(core::str::from_utf8(a).map_err(|_| ParseError::BadArguments)?),
            None => None,
        };
        // An argument that is present but empty counts as absent.
        let arg = arg.filter(|a| !a.is_empty());
        let need = || arg.ok_or(ParseError::BadArguments);
        let opt_path = || arg.and_then(strip_list_flags);
        Ok(match verb {
            b"USER" => Command::User(need()?),
            b"PASS" => Command::Pass(arg.unwrap_or("")),
            b"ACCT" => Command::Acct(need()?),
            b"SYST" => Command::Syst,
            b"FEAT" => Command::Feat,
            b"OPTS" => Command::Opts(need()?),
            b"HELP" => Command::Help(arg),
            b"NOOP" => Command::Noop,
            b"STAT" => Command::Stat(opt_path()),
            b"QUIT" => Command::Quit,
            b"REIN" => Command::Rein,
            b"PWD" | b"XPWD" => Command::Pwd,
            b"CWD" | b"XCWD" => Command::Cwd(need()?),
            b"CDUP" | b"XCUP" => Command::Cdup,
            b"MKD" | b"XMKD" => Command::Mkd(need()?),
            b"RMD" | b"XRMD" => Command::Rmd(need()?),
            b"DELE" => Command::Dele(need()?),
            b"RNFR" => Command::Rnfr(need()?),
            b"RNTO" => Command::Rnto(need()?),
            b"SIZE" => Command::Size(need()?),
            b"MDTM" => Command::Mdtm(need()?),
            b"MFMT" => {
                let a = need()?;
                let (time, path) = a.split_once(' ').ok_or(ParseError::BadArguments)?;
                if path.is_empty() {
                    return Err(ParseError::BadArguments);
                }
                Command::Mfmt { time, path }
            }
            b"TYPE" => Command::Type(parse_type(need()?)?),
            b"MODE" => match need()?.trim() {
                m if m.eq_ignore_ascii_case("S") => Command::Mode,
                m if m.eq_ignore_ascii_case("B") || m.eq_ignore_ascii_case("C") => {
                    return Err(ParseError::UnsupportedParameter)
                }
                _ => return Err(ParseError::BadArguments),
            },
            b"STRU" => match need()?.trim() {
                s if s.eq_ignore_ascii_case("F") => Command::Stru,
                s if s.eq_ignore_ascii_case("R") || s.eq_ignore_ascii_case("P") => {
                    return Err(ParseError::UnsupportedParameter)
                }
                _ => return Err(ParseError::BadArguments),
            },
            b"ALLO" => Command::Allo,
            b"REST" => Command::Rest(parse_u64(need()?.trim()).ok_or(ParseError::BadArguments)?),
            b"RETR" => Command::Retr(need()?),
            b"STOR" => Command::Stor(need()?),
            b"STOU" => Command::Stou(arg),
            b"APPE" => Command::Appe(need()?),
            b"LIST" => Command::List(opt_path()),
            b"NLST" => Command::Nlst(opt_path()),
            b"MLSD" => Command::Mlsd(arg),
            b"MLST" => Command::Mlst(arg),
            b"PASV" => Command::Pasv,
            b"EPSV" => {
                Command::Epsv(addr::parse_epsv_arg(arg.unwrap_or("").trim()).map_err(addr_error)?)
            }
            b"PORT" => Command::Port(addr::parse_port(need()?).map_err(addr_error)?),
            b"EPRT" => Command::Eprt(addr::parse_eprt(need()?.trim()).map_err(addr_error)?),
            b"ABOR" => Command::Abor,
            b"SITE" => Command::Site(need()?),
            b"AUTH" => Command::Auth(need()?),
            b"PBSZ" => Command::Pbsz(need()?),
            b"PROT" => Command::Prot(need()?),
            b"CCC" => Command::Ccc,
            b"SMNT" => Command::NotImplemented("SMNT"),
            b"LPRT" => Command::NotImplemented("LPRT"),
            b"LPSV" => Command::NotImplemented("LPSV"),
            b"MIC" | b"CONF" | b"ENC" | b"ADAT" => Command::NotImplemented("security extension"),
            _ => return Err(ParseError::Unknown),
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
    let mut parts = arg.split(' ').filter(|p| !p.is_empty());
    let first = parts.next().ok_or(ParseError::BadArguments)?;
    let second = parts.next();
    if parts.next().is_some() {
        return Err(ParseError::BadArguments);
    }
    match (first.to_ascii_uppercase().as_str(), second) {
        ("A", None) => Ok(TransferType::Ascii),
        ("A", Some(f)) if f.eq_ignore_ascii_case("N") => Ok(TransferType::Ascii),
        ("A", Some(f)) if f.eq_ignore_ascii_case("T") || f.eq_ignore_ascii_case("C") => {
            Err(ParseError::UnsupportedParameter)
        }
        ("I", None) => Ok(TransferType::Image),
        ("L", Some("8")) => Ok(TransferType::Image),
        ("L", Some(_)) | ("E", _) => Err(ParseError::UnsupportedParameter),
        _ => Err(ParseError::BadArguments),
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Removes leading `ls`-style flags (`-a`, `-l`, `-la`, ...) from a LIST/NLST/STAT argument, as common
/// servers do. Returns the remaining path, or `None` when only flags were given.
fn strip_list_flags(arg: &str) -> Option<&str> {
    let mut rest = arg;
    loop {
        let trimmed = rest.trim_start_matches(' ');
        if let Some(flags) = trimmed.strip_prefix('-') {
            let end = flags.find(' ').unwrap_or(flags.len());
            let word = &flags[..end];
            if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphabetic()) {
                rest = &flags[end..];
                continue;
            }
        }
        break;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.trim().is_empty() {
        None
    } else if rest.len() != arg.len() {
        // Flags were removed: spaces between flags and the path are separators.
        Some(rest.trim_start_matches(' '))
    } else {
        Some(rest)
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
    fn list_flags_are_ignored() {
        assert_eq!(p("LIST -la"), Ok(Command::List(None)));
        assert_eq!(p("LIST -a -l dir"), Ok(Command::List(Some("dir"))));
        assert_eq!(p("LIST dir name"), Ok(Command::List(Some("dir name"))));
        assert_eq!(p("NLST -l"), Ok(Command::Nlst(None)));
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(p("LIST -1"), Ok(Command::List(Some("-1"))));
    }
}
