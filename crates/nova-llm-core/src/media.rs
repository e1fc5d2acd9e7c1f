//! `data:` URLs, the way images and documents travel inline.

/// The parts of a base64 `data:` URL (`data:image/png;base64,iVBOR...`).
///
/// Images and documents are given by URL: `https://...` for a file the service fetches,
/// `data:<media type>;base64,<data>` for one sent inline. Drivers whose service wants the
/// media type and the data apart take them from here.
///
/// ```
/// use nova_llm_core::DataUrl;
///
/// let d = DataUrl::parse("data:application/pdf;base64,JVBERi0x").unwrap();
/// assert_eq!((d.media_type, d.data), ("application/pdf", "JVBERi0x"));
/// assert!(DataUrl::parse("https://example.com/a.pdf").is_none());
/// assert_eq!(DataUrl::base64("image/png", "iVBOR"), "data:image/png;base64,iVBOR");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// The media type (`image/png`, `application/pdf`, ...).
    pub media_type: &'a str,
    /// The base64 data.
    pub data: &'a str,
}

impl<'a> DataUrl<'a> {
    /// The parts of `url` when it is a base64 `data:` URL; `None` otherwise.
    pub fn parse(url: &'a str) -> Option<Self> {
        let rest = url.strip_prefix("data:")?;
        let (head, data) = rest.split_once(',')?;
        let media_type = head.strip_suffix(";base64")?;
        Some(DataUrl { media_type, data })
    }

    /// A base64 `data:` URL of `data` with `media_type`.
    pub fn base64(media_type: &str, data: &str) -> String {
        format!("data:{media_type};base64,{data}")
    }
}

#[cfg(test)]
mod tests {
    use super::DataUrl;

    #[test]
    fn only_base64_data_urls_parse() {
        assert_eq!(
            DataUrl::parse("data:image/jpeg;base64,/9j/4AAQ"),
            Some(DataUrl {
                media_type: "image/jpeg",
                data: "/9j/4AAQ"
            })
        );
        for not in [
            "data:text/plain,hello",
            "data:image/png;base64",
            "http://x/y.png",
            "",
        ] {
            assert_eq!(DataUrl::parse(not), None, "{not}");
        }
    }
}
