//! The checks Go nsqd makes on its options before it starts, and the list of options
//! whose features nsq-rs does not have yet.

use std::time::Duration;

use crate::nsqd::Options;

/// An option combination Go nsqd (or nsq-rs) refuses to start with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartupError {
    /// `--max-deflate-level` outside 1..=9.
    #[error("--max-deflate-level must be [1,9]")]
    MaxDeflateLevel,
    /// `--node-id` outside 0..1024 (it fills 10 bits of every message id).
    #[error("--node-id must be [0,1024)")]
    NodeId,
    /// Only one of `--tls-cert` and `--tls-key`.
    #[error("failed to build TLS config - --tls-cert and --tls-key must be given together")]
    TlsKeyPair,
    /// `--tls-required` (or `--tls-client-auth-policy`) with no certificate.
    #[error("cannot require TLS client connections without TLS key and cert")]
    TlsWithoutCert,
    /// A percentile outside (0, 1].
    #[error("invalid E2E processing latency percentile: {0}")]
    E2ePercentile(f64),
    /// Go v1.3.0 panics at the first statsd push when the interval is 1 s or less.
    #[error("--statsd-interval must be more than 1s when --statsd-address is set")]
    StatsdInterval,
    /// `--replication-factor` below 1, or above the replica set this node knows.
    #[error("--replication-factor must be [1,{max}] with {peers} --replica-peer, got {factor}")]
    ReplicationFactor {
        /// The factor asked for.
        factor: i64,
        /// How many `--replica-peer` were given.
        peers: usize,
        /// The largest factor they allow.
        max: usize,
    },
    /// A zero `--replica-timeout` or `--replica-failover-timeout` with replication on.
    #[error("--replica-timeout and --replica-failover-timeout must be positive")]
    ReplicaTimeout,
}

/// Go's startup checks, in Go's order. `--tls-client-auth-policy` turns on
/// `--tls-required` (value 2) as it does in Go, which is why this takes `&mut`.
pub fn startup_checks(options: &mut Options) -> Result<(), StartupError> {
    if !(1..=9).contains(&options.max_deflate_level) {
        return Err(StartupError::MaxDeflateLevel);
    }
    if !(0..1024).contains(&options.id) {
        return Err(StartupError::NodeId);
    }
    if !options.tls_client_auth_policy.is_empty() && options.tls_required == 0 {
        options.tls_required = 2;
    }
    if options.tls_cert.is_empty() != options.tls_key.is_empty() {
        return Err(StartupError::TlsKeyPair);
    }
    if options.tls_required != 0 && options.tls_cert.is_empty() {
        return Err(StartupError::TlsWithoutCert);
    }
    if let Some(bad) = options
        .e2e_processing_latency_percentiles
        .iter()
        .find(|p| !(**p > 0.0 && **p <= 1.0))
    {
        return Err(StartupError::E2ePercentile(*bad));
    }
    if !options.statsd_address.is_empty() && options.statsd_interval <= Duration::from_secs(1) {
        return Err(StartupError::StatsdInterval);
    }
    check_replication(options)
}

/// The replica set must be able to hold `--replication-factor` copies: this node and
/// its peers.
fn check_replication(options: &Options) -> Result<(), StartupError> {
    let peers = options.replica_peers.len();
    let max = peers + 1;
    let factor = options.replication_factor;
    if factor < 1 || usize::try_from(factor).map_or(true, |f| f > max) {
        return Err(StartupError::ReplicationFactor { factor, peers, max });
    }
    let replicated = factor > 1;
    if replicated
        && (options.replica_timeout.is_zero() || options.replica_failover_timeout.is_zero())
    {
        return Err(StartupError::ReplicaTimeout);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(change: impl FnOnce(&mut Options)) -> Result<Options, StartupError> {
        let mut options = Options::default();
        change(&mut options);
        startup_checks(&mut options).map(|()| options)
    }

    #[test]
    fn defaults_pass() {
        assert!(checked(|_| {}).is_ok());
    }

    #[test]
    fn max_deflate_level_is_one_to_nine() {
        assert_eq!(
            checked(|o| o.max_deflate_level = 0).unwrap_err(),
            StartupError::MaxDeflateLevel
        );
        assert_eq!(
            checked(|o| o.max_deflate_level = 10).unwrap_err(),
            StartupError::MaxDeflateLevel
        );
        assert!(checked(|o| o.max_deflate_level = 1).is_ok());
        assert!(checked(|o| o.max_deflate_level = 9).is_ok());
    }

    #[test]
    fn node_id_fits_ten_bits() {
        assert_eq!(checked(|o| o.id = -1).unwrap_err(), StartupError::NodeId);
        assert_eq!(checked(|o| o.id = 1024).unwrap_err(), StartupError::NodeId);
        assert!(checked(|o| o.id = 0).is_ok());
        assert!(checked(|o| o.id = 1023).is_ok());
    }

    #[test]
    fn tls_rules() {
        assert_eq!(
            checked(|o| o.tls_required = 2).unwrap_err(),
            StartupError::TlsWithoutCert
        );
        assert_eq!(
            checked(|o| o.tls_required = 1).unwrap_err(),
            StartupError::TlsWithoutCert
        );
        assert_eq!(
            checked(|o| o.tls_cert = "c.pem".into()).unwrap_err(),
            StartupError::TlsKeyPair
        );
        assert_eq!(
            checked(|o| o.tls_client_auth_policy = "require".into()).unwrap_err(),
            StartupError::TlsWithoutCert,
            "an auth policy forces tls-required"
        );
        let forced = checked(|o| {
            o.tls_client_auth_policy = "require-verify".into();
            o.tls_cert = "c.pem".into();
            o.tls_key = "k.pem".into();
        })
        .unwrap();
        assert_eq!(forced.tls_required, 2);
        let kept = checked(|o| {
            o.tls_client_auth_policy = "require".into();
            o.tls_required = 1;
            o.tls_cert = "c.pem".into();
            o.tls_key = "k.pem".into();
        })
        .unwrap();
        assert_eq!(kept.tls_required, 1, "tcp-https stays tcp-https");
    }

    #[test]
    fn percentiles_are_in_zero_one() {
        assert!(checked(|o| o.e2e_processing_latency_percentiles = vec![1.0, 0.5, 0.001]).is_ok());
        for bad in [0.0, -0.5, 1.01, f64::NAN] {
            let err =
                checked(|o| o.e2e_processing_latency_percentiles = vec![0.5, bad]).unwrap_err();
            assert!(matches!(err, StartupError::E2ePercentile(_)), "{bad}");
        }
        assert_eq!(
            StartupError::E2ePercentile(1.5).to_string(),
            "invalid E2E processing latency percentile: 1.5"
        );
    }

    #[test]
    fn statsd_interval_must_exceed_one_second_only_with_statsd() {
        let one_second = |o: &mut Options| o.statsd_interval = Duration::from_secs(1);
        assert!(
            checked(one_second).is_ok(),
            "no statsd address: the loop never runs"
        );
        let err = checked(|o| {
            one_second(o);
            o.statsd_address = "127.0.0.1:8125".into();
        })
        .unwrap_err();
        assert_eq!(err, StartupError::StatsdInterval);
        assert!(checked(|o| {
            o.statsd_interval = Duration::from_millis(1001);
            o.statsd_address = "127.0.0.1:8125".into();
        })
        .is_ok());
    }

    #[test]
    fn replication_factor_fits_the_replica_set() {
        assert!(checked(|o| o.replication_factor = 1).is_ok());
        let err = checked(|o| o.replication_factor = 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--replication-factor must be [1,1] with 0 --replica-peer, got 2"
        );
        assert!(checked(|o| o.replication_factor = 0).is_err());
        let two_peers = |o: &mut Options| {
            o.replica_peers = vec!["b:4150".into(), "c:4150".into()];
        };
        for factor in 1..=3 {
            assert!(checked(|o| {
                two_peers(o);
                o.replication_factor = factor;
            })
            .is_ok());
        }
        assert!(checked(|o| {
            two_peers(o);
            o.replication_factor = 4;
        })
        .is_err());
        let err = checked(|o| {
            two_peers(o);
            o.replication_factor = 2;
            o.replica_timeout = Duration::ZERO;
        })
        .unwrap_err();
        assert_eq!(err, StartupError::ReplicaTimeout);
    }
}
