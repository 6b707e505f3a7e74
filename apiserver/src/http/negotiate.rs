//! Content negotiation: which representation the client asked for in `Accept`.
//!
//! Kubernetes clients ask for a `Table` (`application/json;as=Table;v=v1;g=meta.k8s.io`) or
//! aggregated discovery (`as=APIGroupDiscoveryList`) through media-type parameters, each with a
//! plain JSON fallback. Protobuf is never served; JSON is always an acceptable answer.

/// A Table in this meta.k8s.io version (`v1` or `v1beta1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableVersion(pub &'static str);

/// Splits an Accept header into media ranges with their parameters.
fn media_ranges(accept: &str) -> impl Iterator<Item = (String, Vec<(String, String)>)> + '_ {
    accept.split(',').map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        (media, params)
    })
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The first `as=Table` range the server can serve, if the client prefers a Table.
pub fn wants_table(accept: &str) -> Option<TableVersion> {
    for (media, params) in media_ranges(accept) {
        if media != "application/json" {
            continue;
        }
        match (
            param(&params, "as"),
            param(&params, "g"),
            param(&params, "v"),
        ) {
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Some(TableVersion("v1")),
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => {
                return Some(TableVersion("v1beta1"));
            }
            (None, _, _) => return None,
            _ => {}
        }
    }
    None
}

/// Whether the client prefers aggregated discovery (apidiscovery.k8s.io/v2).
pub fn wants_aggregated_discovery(accept: &str) -> bool {
    for (media, params) in media_ranges(accept) {
        if media != "application/json" {
            continue;
        }
        match (
            param(&params, "as"),
            param(&params, "g"),
            param(&params, "v"),
        ) {
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return true;
            }
            (None, _, _) => return false,
            _ => {}
        }
    }
    false
}

/// Media type of aggregated discovery answers.
pub const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_accept() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(wants_table(a), Some(TableVersion("v1")));
        assert_eq!(wants_table("application/json"), None);
        assert_eq!(
            wants_table("application/json;as=Table;v=v2;g=meta.k8s.io,application/json"),
            None
        );
        assert_eq!(
            wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            Some(TableVersion("v1beta1"))
        );
    }

    #[test]
    fn aggregated_discovery_accept() {
        assert!(wants_aggregated_discovery(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated_discovery("application/json, */*"));
    }
}
