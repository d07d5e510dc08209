//! Broker URLs: connecting to one, and what a URL tells (its user, its password, its
//! text without the password).

use lapin::{Connection, ConnectionProperties};

use crate::BrokerError;

/// Opens a connection named `name` (shown in the broker's management tools).
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .map_err(|error| BrokerError::Connect {
        node: redact(url),
        error,
    })
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The user a connection to `url` authenticates as, percent-decoded (`guest` when the URL
/// names none): the `user_id` RabbitMQ accepts on that connection's messages. `None` when
/// the URL does not parse, uses EXTERNAL or ANONYMOUS authentication (the user comes from
/// the client certificate or the broker, not the URL), or names a user too long for the
/// property.
pub fn url_user(url: &str) -> Option<String> {
    use lapin::uri::{AMQPUri, SASLMechanism};
    let uri: AMQPUri = url.parse().ok()?;
    if matches!(
        uri.query.auth_mechanism,
        Some(SASLMechanism::External | SASLMechanism::Anonymous)
    ) {
        return None;
    }
    let user = uri.authority.userinfo.username;
    (user.len() <= 255).then_some(user)
}

/// The password in `url`, percent-decoded, when it has one.
pub fn url_password(url: &str) -> Option<String> {
    let uri: lapin::uri::AMQPUri = url.parse().ok()?;
    let pw = uri.authority.userinfo.password;
    (!pw.is_empty()).then_some(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_user_is_percent_decoded() {
        assert_eq!(
            url_user("amqp://al%40ice:p%3Ass@h:5672/%2f").as_deref(),
            Some("al@ice")
        );
        assert_eq!(url_user("amqp://h:5672/%2f").as_deref(), Some("guest"));
        assert_eq!(url_user("amqp://u:p@h/%2f?auth_mechanism=external"), None);
        assert_eq!(url_user("not a url"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("amqp://guest:secret@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact("amqp://h"), "amqp://h");
    }
}
