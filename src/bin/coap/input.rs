//! Where a command's main argument comes from.

use std::io::{self, Read as _};

/// The argument's bytes, or all of stdin when the argument is absent or `-`.
pub(crate) fn arg_or_stdin(arg: Option<&str>) -> io::Result<Vec<u8>> {
    match arg {
        Some(text) if text != "-" => Ok(text.as_bytes().to_vec()),
        _ => {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf)?;
            Ok(buf)
        }
    }
}
