//! Composite fields of the consumer-group bodies: the group mode, seek positions,
//! partition and offset lists, group summaries and group descriptions. As in
//! `fields`, each writer refuses exactly what its reader refuses.

use bytes::{BufMut, BytesMut};
use swarmmq_types::{Limits, PartitionId};

use crate::reader::Reader;
use crate::writer::{put_count, put_opt, put_str};
use crate::{
    GroupDescription, GroupMode, GroupPartitionInfo, GroupSummary, MemberInfo, PartitionOffset,
    ProtocolError, SeekPosition,
};

/// Smallest encodings, used to bound counts by the bytes left in the body.
const MIN_PARTITION_ID: usize = 4;
const MIN_PARTITION_OFFSET: usize = 4 + 8;
/// group + destination + mode + member count.
const MIN_GROUP_SUMMARY: usize = 2 + 2 + 1 + 4;
/// consumer id + partition count + last seen.
const MIN_MEMBER_INFO: usize = 2 + 4 + 8;
/// partition + owner presence + six u64 counters.
const MIN_GROUP_PARTITION_INFO: usize = 4 + 1 + 6 * 8;

const SEEK_EARLIEST: u8 = 0;
const SEEK_LATEST: u8 = 1;
const SEEK_OFFSET: u8 = 2;
const SEEK_TIMESTAMP: u8 = 3;

pub(crate) fn put_mode(out: &mut BytesMut, mode: GroupMode) {
    out.put_u8(mode as u8);
}

pub(crate) fn read_mode(r: &mut Reader) -> Result<GroupMode, ProtocolError> {
    match r.u8("group mode")? {
        0 => Ok(GroupMode::Shared),
        1 => Ok(GroupMode::Ordered),
        value => Err(ProtocolError::InvalidTag {
            field: "group mode",
            value,
        }),
    }
}

/// Tag `u8`, then an 8-byte value for `Offset` (u64) and `Timestamp` (i64).
pub(crate) fn put_seek_position(out: &mut BytesMut, p: SeekPosition) {
    match p {
        SeekPosition::Earliest => out.put_u8(SEEK_EARLIEST),
        SeekPosition::Latest => out.put_u8(SEEK_LATEST),
        SeekPosition::Offset(o) => {
            out.put_u8(SEEK_OFFSET);
            out.put_u64(o);
        }
        SeekPosition::Timestamp(t) => {
            out.put_u8(SEEK_TIMESTAMP);
            out.put_i64(t);
        }
    }
}

pub(crate) fn read_seek_position(r: &mut Reader) -> Result<SeekPosition, ProtocolError> {
    Ok(match r.u8("seek position")? {
        SEEK_EARLIEST => SeekPosition::Earliest,
        SEEK_LATEST => SeekPosition::Latest,
        SEEK_OFFSET => SeekPosition::Offset(r.u64("seek offset")?),
        SEEK_TIMESTAMP => SeekPosition::Timestamp(r.i64("seek timestamp")?),
        value => {
            return Err(ProtocolError::InvalidTag {
                field: "seek position",
                value,
            });
        }
    })
}

/// `u32` count (at most `max_partitions`), then a `u32` per partition.
pub(crate) fn put_partitions(
    out: &mut BytesMut,
    field: &'static str,
    partitions: &[PartitionId],
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_count(out, field, partitions.len(), limits.max_partitions)?;
    for &p in partitions {
        out.put_u32(p);
    }
    Ok(())
}

pub(crate) fn read_partitions(
    r: &mut Reader,
    field: &'static str,
    limits: &Limits,
) -> Result<Vec<PartitionId>, ProtocolError> {
    let n = r.count(field, limits.max_partitions, MIN_PARTITION_ID)?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        partitions.push(r.u32(field)?);
    }
    Ok(partitions)
}

/// `u32` count (at most `max_ack_ranges`), then per entry: partition u32, offset u64.
pub(crate) fn put_offsets(
    out: &mut BytesMut,
    offsets: &[PartitionOffset],
    limits: &Limits,
) -> Result<(), ProtocolError> {
    put_count(out, "offsets", offsets.len(), limits.max_ack_ranges)?;
    for o in offsets {
        out.put_u32(o.partition);
        out.put_u64(o.offset);
    }
    Ok(())
}

pub(crate) fn read_offsets(
    r: &mut Reader,
    limits: &Limits,
) -> Result<Vec<PartitionOffset>, ProtocolError> {
    let n = r.count("offsets", limits.max_ack_ranges, MIN_PARTITION_OFFSET)?;
    let mut offsets = Vec::with_capacity(n);
    for _ in 0..n {
        offsets.push(PartitionOffset {
            partition: r.u32("offset partition")?,
            offset: r.u64("offset")?,
        });
    }
    Ok(offsets)
}

/// `u32` count (at most `max_groups`), then per group: group string, destination
/// string, mode u8, members u32.
pub(crate) fn put_group_summaries(
    out: &mut BytesMut,
    groups: &[GroupSummary],
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let text = limits.max_text_bytes;
    put_count(out, "groups", groups.len(), limits.max_groups)?;
    for g in groups {
        put_str(out, "group", &g.group, text)?;
        put_str(out, "destination", &g.destination, text)?;
        put_mode(out, g.mode);
        out.put_u32(g.members);
    }
    Ok(())
}

pub(crate) fn read_group_summaries(
    r: &mut Reader,
    limits: &Limits,
) -> Result<Vec<GroupSummary>, ProtocolError> {
    let text = limits.max_text_bytes;
    let n = r.count("groups", limits.max_groups, MIN_GROUP_SUMMARY)?;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        groups.push(GroupSummary {
            group: r.string("group", text)?,
            destination: r.string("destination", text)?,
            mode: read_mode(r)?,
            members: r.u32("members")?,
        });
    }
    Ok(groups)
}

/// group, destination, mode, generation, members, partitions, dlq_moved, expired.
pub(crate) fn put_group_description(
    out: &mut BytesMut,
    d: &GroupDescription,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    let text = limits.max_text_bytes;
    put_str(out, "group", &d.group, text)?;
    put_str(out, "destination", &d.destination, text)?;
    put_mode(out, d.mode);
    out.put_u32(d.generation);
    // No limit names a member count; the bytes left in the frame bound it.
    put_count(out, "members", d.members.len(), u32::MAX)?;
    for m in &d.members {
        put_str(out, "consumer id", &m.consumer_id, text)?;
        put_partitions(out, "member partitions", &m.partitions, limits)?;
        out.put_i64(m.last_seen_ms);
    }
    put_count(
        out,
        "group partitions",
        d.partitions.len(),
        limits.max_partitions,
    )?;
    for p in &d.partitions {
        out.put_u32(p.partition);
        put_opt(out, p.owner.as_deref(), |o, v| {
            put_str(o, "partition owner", v, text)
        })?;
        for v in [
            p.committed,
            p.end_offset,
            p.lag,
            p.in_flight,
            p.pending,
            p.delayed,
        ] {
            out.put_u64(v);
        }
    }
    out.put_u64(d.dlq_moved);
    out.put_u64(d.expired);
    Ok(())
}

pub(crate) fn read_group_description(
    r: &mut Reader,
    limits: &Limits,
) -> Result<GroupDescription, ProtocolError> {
    let text = limits.max_text_bytes;
    let group = r.string("group", text)?;
    let destination = r.string("destination", text)?;
    let mode = read_mode(r)?;
    let generation = r.u32("generation")?;
    let n = r.count("members", u32::MAX, MIN_MEMBER_INFO)?;
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        members.push(MemberInfo {
            consumer_id: r.string("consumer id", text)?,
            partitions: read_partitions(r, "member partitions", limits)?,
            last_seen_ms: r.i64("last seen ms")?,
        });
    }
    let n = r.count(
        "group partitions",
        limits.max_partitions,
        MIN_GROUP_PARTITION_INFO,
    )?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        partitions.push(GroupPartitionInfo {
            partition: r.u32("partition")?,
            owner: r.opt("partition owner", |r| r.string("partition owner", text))?,
            committed: r.u64("committed")?,
            end_offset: r.u64("end offset")?,
            lag: r.u64("lag")?,
            in_flight: r.u64("in flight")?,
            pending: r.u64("pending")?,
            delayed: r.u64("delayed")?,
        });
    }
    Ok(GroupDescription {
        group,
        destination,
        mode,
        generation,
        members,
        partitions,
        dlq_moved: r.u64("dlq moved")?,
        expired: r.u64("expired")?,
    })
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::reader::read_all as read;

    #[test]
    fn mode_and_seek_tags_outside_the_table_are_refused() {
        assert_eq!(read(&[1], read_mode), Ok(GroupMode::Ordered));
        assert_eq!(
            read(&[2], read_mode),
            Err(ProtocolError::InvalidTag {
                field: "group mode",
                value: 2
            })
        );
        assert_eq!(
            read(&[4], read_seek_position),
            Err(ProtocolError::InvalidTag {
                field: "seek position",
                value: 4
            })
        );
        // Earliest and Latest carry no value: a trailing 8 bytes are not read as one.
        assert_eq!(
            read(&[1, 0, 0, 0, 0, 0, 0, 0, 0], read_seek_position),
            Err(ProtocolError::TrailingBytes(8))
        );
    }

    #[test]
    fn seek_positions_round_trip_at_the_edges() {
        for p in [
            SeekPosition::Earliest,
            SeekPosition::Latest,
            SeekPosition::Offset(u64::MAX),
            SeekPosition::Timestamp(i64::MIN),
        ] {
            let mut out = BytesMut::new();
            put_seek_position(&mut out, p);
            assert_eq!(read(&out, read_seek_position), Ok(p));
        }
    }

    #[test]
    fn partition_lists_obey_max_partitions_both_ways() {
        let limits = Limits {
            max_partitions: 2,
            ..Limits::DEFAULT
        };
        let mut out = BytesMut::new();
        assert_eq!(
            put_partitions(&mut out, "assignment", &[0, 1, 2], &limits),
            Err(ProtocolError::CountOverLimit {
                field: "assignment",
                count: 3,
                limit: 2
            })
        );
        let raw = [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(
            read(&raw, |r| read_partitions(r, "assignment", &limits)),
            Err(ProtocolError::CountOverLimit {
                field: "assignment",
                count: 3,
                limit: 2
            })
        );
        assert_eq!(
            read(&raw, |r| read_partitions(r, "assignment", &Limits::DEFAULT)),
            Ok(vec![0, 1, 2])
        );
    }
}
