use std::fmt;

/// Delivery priority, 1 (lowest) to 10 (highest); 5 when a producer does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("priority must be between 1 and 10, got {0}")]
pub struct PriorityError(pub u8);

impl Priority {
    pub const MIN: Priority = Priority(1);
    pub const MAX: Priority = Priority(10);
    pub const DEFAULT: Priority = Priority(5);

    pub fn new(value: u8) -> Result<Self, PriorityError> {
        if (1..=10).contains(&value) {
            Ok(Priority(value))
        } else {
            Err(PriorityError(value))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Priority::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_to_ten_only() {
        assert_eq!(Priority::new(0), Err(PriorityError(0)));
        assert_eq!(Priority::new(11), Err(PriorityError(11)));
        for p in 1..=10 {
            assert_eq!(Priority::new(p).map(Priority::get), Ok(p));
        }
        assert_eq!(Priority::default().get(), 5);
    }
}
