/// Why the coordinator of an ordered group refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// The member is not in the group (never joined, left, or its session expired); it
    /// must join again.
    #[error("unknown group member")]
    UnknownMember,
    /// The member's generation is older than the assignment it uses (or newer than any
    /// the coordinator issued); it must heartbeat to learn the current assignment.
    #[error("stale generation; the group is at generation {current}")]
    StaleGeneration { current: u32 },
    /// The member, at the current generation, does not own the partition.
    #[error("partition {partition} is not assigned to this member")]
    NotOwner { partition: u32 },
    /// The group already has its maximum number of members.
    #[error("the group has its maximum number of members")]
    TooManyMembers,
}
